"""Numpy inference for every routing strategy, loaded from ``.npz`` + JSON manifests.

One artefact directory holds ``manifest.json`` (strategy, classes, parameters, training
data hashes, metrics, and the sha256 of ``weights.npz``) and ``weights.npz`` (plain numeric
arrays, loaded with ``allow_pickle=False``). scikit-learn is only used to *train* these
(``extproc.routing.train``); serving uses the numpy forward passes below, which tests
check against scikit-learn's own ``predict_proba``/``decision_function``.

Every model maps a batch of unit embeddings ``[n, d]`` to class scores ``[n, c]`` that are
probabilities (rows sum to 1), so the router treats all strategies alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import ArtefactError, Manifest, load_manifest, load_npz

Matrix = npt.NDArray[np.float32]
STRATEGIES: tuple[str, ...] = ("centroid", "knn", "linear", "svm", "mlp")


class Model(Protocol):
    """What the router needs from a classifier: names of classes and scores for them."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    def scores(self, x: Matrix) -> Matrix: ...


def softmax(z: npt.NDArray[Any]) -> Matrix:
    """Row-wise softmax, numerically stable."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: Matrix = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


@dataclass(frozen=True, slots=True)
class Centroids:
    """Nearest prototype: each class owns one or more unit centroids; class score = max cos.

    Scores are a softmax of the per-class best cosine divided by ``temperature``; the
    argmax is the class of the nearest centroid, whatever the temperature.
    """

    classes: tuple[str, ...]
    centroids: Matrix
    owner: npt.NDArray[np.int64]
    temperature: float
    # Set by ``grouped``: centroids sorted by class, the classes that own some, and where
    # each one's run starts, so ``scores`` is one vectorised ``maximum.reduceat``.
    present: npt.NDArray[np.intp] | None = None
    starts: npt.NDArray[np.intp] | None = None

    @classmethod
    def grouped(
        cls, classes: tuple[str, ...], centroids: Matrix, owner: npt.NDArray[np.int64],
        temperature: float,
    ) -> Centroids:
        """The same model with centroids stored class by class (faster ``scores``)."""
        order = np.argsort(owner, kind="stable")
        owner = owner[order]
        present = np.unique(owner).astype(np.intp)
        starts = np.searchsorted(owner, present).astype(np.intp)
        return cls(classes, np.ascontiguousarray(centroids[order]), owner, temperature,
                   present, starts)

    def scores(self, x: Matrix) -> Matrix:
        sims = x @ self.centroids.T
        best = np.full((x.shape[0], len(self.classes)), -np.inf, dtype=np.float32)
        if self.present is not None and self.starts is not None and self.present.size:
            best[:, self.present] = np.maximum.reduceat(sims, self.starts, axis=1)
            return softmax(best / self.temperature)
        for c in range(len(self.classes)):
            cols = self.owner == c
            if cols.any():
                best[:, c] = sims[:, cols].max(axis=1)
        return softmax(best / self.temperature)


@dataclass(frozen=True, slots=True)
class Knn:
    """k nearest training vectors by cosine, uniform vote (as sklearn ``weights='uniform'``)."""

    classes: tuple[str, ...]
    points: Matrix
    labels: npt.NDArray[np.int64]
    k: int

    def scores(self, x: Matrix) -> Matrix:
        sims = x @ self.points.T
        k = min(self.k, self.points.shape[0])
        # Stable sort on negated similarity: ties go to the lower index, like sklearn.
        idx = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        out = np.zeros((x.shape[0], len(self.classes)), dtype=np.float32)
        for row in range(x.shape[0]):
            np.add.at(out[row], self.labels[idx[row]], 1.0)
        return out / float(k)


@dataclass(frozen=True, slots=True)
class Linear:
    """Standardise, then ``x @ W.T + b``: logistic regression (softmax/sigmoid) or linear SVM.

    For the SVM the softmax of the margins is a ranking score, not a calibrated probability;
    its argmax equals sklearn's ``predict``.
    """

    classes: tuple[str, ...]
    mean: Matrix
    scale: Matrix
    coef: Matrix
    intercept: Matrix

    def scores(self, x: Matrix) -> Matrix:
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        if z.shape[1] == 1:  # binary: sklearn keeps one column for the positive class
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            out: Matrix = np.stack([1.0 - p, p], axis=1).astype(np.float32)
            return out
        return softmax(z)


@dataclass(frozen=True, slots=True)
class Mlp:
    """sklearn ``MLPClassifier`` forward pass: standardise, ReLU hidden layers, softmax/logistic."""

    classes: tuple[str, ...]
    mean: Matrix
    scale: Matrix
    weights: tuple[Matrix, ...]
    biases: tuple[Matrix, ...]

    def scores(self, x: Matrix) -> Matrix:
        h = (x - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        z = h @ self.weights[-1] + self.biases[-1]
        if z.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            out: Matrix = np.stack([1.0 - p, p], axis=1).astype(np.float32)
            return out
        return softmax(z)


def _f32(a: npt.NDArray[Any]) -> Matrix:
    out: Matrix = np.ascontiguousarray(a, dtype=np.float32)
    return out


def model_from_arrays(
    strategy: str, classes: Sequence[str], arrays: Mapping[str, npt.NDArray[Any]],
    params: Mapping[str, Any],
) -> Model:
    """Build the numpy model of ``strategy`` from its arrays (shared by load and train)."""
    names = tuple(classes)
    if strategy == "centroid":
        return Centroids.grouped(
            names, _f32(arrays["centroids"]), arrays["owner"].astype(np.int64),
            float(params.get("temperature", 0.05)),
        )
    if strategy == "knn":
        return Knn(names, _f32(arrays["points"]), arrays["labels"].astype(np.int64),
                   int(params["k"]))
    if strategy in ("linear", "svm"):
        return Linear(names, _f32(arrays["mean"]), _f32(arrays["scale"]), _f32(arrays["coef"]),
                      _f32(arrays["intercept"]))
    if strategy == "mlp":
        layers = int(params["layers"])
        return Mlp(
            names, _f32(arrays["mean"]), _f32(arrays["scale"]),
            tuple(_f32(arrays[f"w{i}"]) for i in range(layers)),
            tuple(_f32(arrays[f"b{i}"]) for i in range(layers)),
        )
    raise ArtefactError(f"unknown routing strategy '{strategy}' (known: {', '.join(STRATEGIES)})")


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A verified artefact: the model plus its manifest (strategy, kind, metrics...)."""

    model: Model
    manifest: Manifest

    @property
    def strategy(self) -> str:
        return str(self.manifest.data["strategy"])

    @property
    def kind(self) -> str:
        return str(self.manifest.data.get("kind", "category"))


def load_model(directory: Path, dimensions: int | None = None) -> LoadedModel:
    """Verify ``directory/manifest.json`` hashes, then build the numpy model it describes."""
    manifest = load_manifest(directory / "manifest.json")
    data = manifest.data
    strategy, classes = data.get("strategy"), data.get("classes")
    if not isinstance(strategy, str) or not isinstance(classes, list) or not classes:
        raise ArtefactError(f"{manifest.path}: needs 'strategy' and a non-empty 'classes' list")
    arrays = load_npz(manifest, "weights.npz")
    try:
        model = model_from_arrays(strategy, classes, arrays, data.get("params", {}))
        probe = np.zeros((1, dimensions or _input_width(arrays, strategy)), dtype=np.float32)
        out = model.scores(probe)
    except (KeyError, ValueError) as exc:
        raise ArtefactError(
            f"{directory}: weights do not fit strategy '{strategy}': {exc}"
        ) from None
    if out.shape != (1, len(classes)):
        raise ArtefactError(f"{directory}: model yields {out.shape[1]} scores for "
                            f"{len(classes)} classes")
    return LoadedModel(model, manifest)


def _input_width(arrays: Mapping[str, npt.NDArray[Any]], strategy: str) -> int:
    key = {"centroid": "centroids", "knn": "points"}.get(strategy, "mean")
    return int(arrays[key].shape[-1])
