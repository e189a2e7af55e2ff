"""Classifier strategies, by name: how each one is trained, stored and served.

A strategy is one class with three duties:

* ``fit(x, labels, classes, groups, params, seed) -> (arrays, params)``: train on unit
  embeddings (training only; it may import scikit-learn lazily, never at module level);
* ``from_arrays(classes, arrays, params) -> Model``: the numpy model the router serves,
  rebuilt from the plain arrays of ``weights.npz`` (no pickle);
* ``input_width(arrays) -> int``: the embedding width the arrays expect (load checks).

Built-in strategies are in :data:`BUILTIN`; others come from the ``routeiq.strategies``
entry-point group (``my-strategy = "my_pkg.module:MyStrategy"``): the artefact's manifest
names the strategy and the RoutingConfig names the artefact (``spec.routing.artefacts``),
so a new classifier is one module plus a config entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import ArtefactError, Manifest, load_manifest, load_npz
from extproc.routing.classifiers import Centroids, Knn, Linear, Matrix, Mlp, Model

Arrays = dict[str, npt.NDArray[Any]]
ENTRY_POINT_GROUP = "routeiq.strategies"


class Strategy(Protocol):
    default_params: ClassVar[Mapping[str, Any]]

    def fit(
        self,
        x: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        classes: tuple[str, ...],
        groups: Sequence[str] | None,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Arrays, dict[str, Any]]: ...

    def from_arrays(
        self,
        classes: tuple[str, ...],
        arrays: Mapping[str, npt.NDArray[Any]],
        params: Mapping[str, Any],
    ) -> Model: ...

    def input_width(self, arrays: Mapping[str, npt.NDArray[Any]]) -> int: ...


def f32(a: npt.NDArray[Any]) -> Matrix:
    out: Matrix = np.ascontiguousarray(a, dtype=np.float32)
    return out


def _standardise(x: npt.NDArray[np.float32]) -> tuple[Arrays, npt.NDArray[np.float32]]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    return {"mean": scaler.mean_, "scale": scale}, ((x - scaler.mean_) / scale).astype(np.float32)


class CentroidStrategy:
    """One unit centroid per (class, group): a class of unlike sources keeps a prototype
    per source."""

    default_params: ClassVar[Mapping[str, Any]] = MappingProxyType({"temperature": 0.05})

    def fit(
        self,
        x: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        classes: tuple[str, ...],
        groups: Sequence[str] | None,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Arrays, dict[str, Any]]:
        names = [classes[i] for i in labels]
        keys = list(zip(names, groups or names, strict=True))
        cents, owner = [], []
        for cls, grp in sorted(set(keys)):
            rows = [i for i, k in enumerate(keys) if k == (cls, grp)]
            c = x[rows].mean(axis=0)
            cents.append(c / np.linalg.norm(c))
            owner.append(classes.index(cls))
        return {
            "centroids": np.asarray(cents, np.float32),
            "owner": np.asarray(owner, np.int64),
        }, params

    def from_arrays(
        self,
        classes: tuple[str, ...],
        arrays: Mapping[str, npt.NDArray[Any]],
        params: Mapping[str, Any],
    ) -> Model:
        return Centroids.grouped(
            classes,
            f32(arrays["centroids"]),
            arrays["owner"].astype(np.int64),
            float(params.get("temperature", 0.05)),
        )

    def input_width(self, arrays: Mapping[str, npt.NDArray[Any]]) -> int:
        return int(arrays["centroids"].shape[-1])


class KnnStrategy:
    default_params: ClassVar[Mapping[str, Any]] = MappingProxyType({"k": 10})

    def fit(
        self,
        x: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        classes: tuple[str, ...],
        groups: Sequence[str] | None,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Arrays, dict[str, Any]]:
        return {"points": x.astype(np.float32), "labels": labels}, params

    def from_arrays(
        self,
        classes: tuple[str, ...],
        arrays: Mapping[str, npt.NDArray[Any]],
        params: Mapping[str, Any],
    ) -> Model:
        return Knn(
            classes, f32(arrays["points"]), arrays["labels"].astype(np.int64), int(params["k"])
        )

    def input_width(self, arrays: Mapping[str, npt.NDArray[Any]]) -> int:
        return int(arrays["points"].shape[-1])


class _Standardised:
    """Strategies whose arrays start with a standardisation (``mean``, ``scale``)."""

    def input_width(self, arrays: Mapping[str, npt.NDArray[Any]]) -> int:
        return int(arrays["mean"].shape[-1])

    def from_arrays(
        self,
        classes: tuple[str, ...],
        arrays: Mapping[str, npt.NDArray[Any]],
        params: Mapping[str, Any],
    ) -> Model:
        return Linear(
            classes,
            f32(arrays["mean"]),
            f32(arrays["scale"]),
            f32(arrays["coef"]),
            f32(arrays["intercept"]),
        )


class _LinearModelStrategy(_Standardised):
    """Linear models on standardised embeddings: only the scikit-learn estimator differs."""

    def fit(
        self,
        x: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        classes: tuple[str, ...],
        groups: Sequence[str] | None,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Arrays, dict[str, Any]]:
        arrays, xs = _standardise(x)
        model = self._estimator(params, seed).fit(xs, labels)
        arrays.update(coef=model.coef_, intercept=np.atleast_1d(model.intercept_))
        return arrays, params

    def _estimator(self, params: Mapping[str, Any], seed: int) -> Any:
        raise NotImplementedError


class LogisticStrategy(_LinearModelStrategy):
    default_params: ClassVar[Mapping[str, Any]] = MappingProxyType({"C": 1.0})

    def _estimator(self, params: Mapping[str, Any], seed: int) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=params["C"], max_iter=2000)


class LinearSvmStrategy(_LinearModelStrategy):
    default_params: ClassVar[Mapping[str, Any]] = MappingProxyType({"C": 0.1})

    def _estimator(self, params: Mapping[str, Any], seed: int) -> Any:
        from sklearn.svm import LinearSVC

        return LinearSVC(C=params["C"], max_iter=5000, random_state=seed)


class MlpStrategy(_Standardised):
    default_params: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {"hidden": 256, "alpha": 1e-3, "max_iter": 300}
    )

    def fit(
        self,
        x: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        classes: tuple[str, ...],
        groups: Sequence[str] | None,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[Arrays, dict[str, Any]]:
        from sklearn.neural_network import MLPClassifier

        arrays, xs = _standardise(x)
        mlp = MLPClassifier(
            hidden_layer_sizes=(int(params["hidden"]),),
            alpha=params["alpha"],
            max_iter=int(params["max_iter"]),
            early_stopping=True,
            random_state=seed,
        ).fit(xs, labels)
        for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        return arrays, {**params, "layers": len(mlp.coefs_)}

    def from_arrays(
        self,
        classes: tuple[str, ...],
        arrays: Mapping[str, npt.NDArray[Any]],
        params: Mapping[str, Any],
    ) -> Model:
        layers = int(params["layers"])
        return Mlp(
            classes,
            f32(arrays["mean"]),
            f32(arrays["scale"]),
            tuple(f32(arrays[f"w{i}"]) for i in range(layers)),
            tuple(f32(arrays[f"b{i}"]) for i in range(layers)),
        )


BUILTIN: Mapping[str, Strategy] = MappingProxyType(
    {
        "centroid": CentroidStrategy(),
        "knn": KnnStrategy(),
        "linear": LogisticStrategy(),
        "svm": LinearSvmStrategy(),
        "mlp": MlpStrategy(),
    }
)


def known_strategies() -> tuple[str, ...]:
    """Every strategy name: built in, then those the entry-point group adds."""
    extra = sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return (*BUILTIN, *(n for n in extra if n not in BUILTIN))


def get_strategy(name: str) -> Strategy:
    """The strategy called ``name``; ``ArtefactError`` (a ConfigError) when none is."""
    builtin = BUILTIN.get(name)
    if builtin is not None:
        return builtin
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            found: Strategy = ep.load()()
            return found
    raise ArtefactError(
        f"unknown routing strategy '{name}' (known: {', '.join(known_strategies())})"
    )


def model_from_arrays(
    strategy: str,
    classes: Sequence[str],
    arrays: Mapping[str, npt.NDArray[Any]],
    params: Mapping[str, Any],
) -> Model:
    """The numpy model of ``strategy`` from its arrays (shared by load and train)."""
    return get_strategy(strategy).from_arrays(tuple(classes), arrays, params)


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
        width = dimensions or get_strategy(strategy).input_width(arrays)
        probe = np.zeros((1, width), dtype=np.float32)
        out = model.scores(probe)
    except (KeyError, ValueError) as exc:
        raise ArtefactError(
            f"{directory}: weights do not fit strategy '{strategy}': {exc}"
        ) from None
    if out.shape != (1, len(classes)):
        raise ArtefactError(
            f"{directory}: model yields {out.shape[1]} scores for {len(classes)} classes"
        )
    return LoadedModel(model, manifest)
