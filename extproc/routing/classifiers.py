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

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


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
        cls,
        classes: tuple[str, ...],
        centroids: Matrix,
        owner: npt.NDArray[np.int64],
        temperature: float,
    ) -> Centroids:
        """The same model with centroids stored class by class (faster ``scores``)."""
        order = np.argsort(owner, kind="stable")
        owner = owner[order]
        present = np.unique(owner).astype(np.intp)
        starts = np.searchsorted(owner, present).astype(np.intp)
        return cls(
            classes, np.ascontiguousarray(centroids[order]), owner, temperature, present, starts
        )

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
