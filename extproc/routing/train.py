"""Training of routing artefacts with scikit-learn (dev/training only, never imported by
the serving path: ``build_router`` loads the ``.npz`` + JSON these functions write).

``fit`` turns embeddings + labels into the numpy arrays of one strategy; ``save_model``
writes ``weights.npz`` and a ``manifest.json`` with the artefact hash, the training data
hashes, the parameters, the metrics and the command that produced it. No pickle anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import sha256_file
from extproc.routing.classifiers import Model, model_from_arrays

Arrays = dict[str, npt.NDArray[Any]]

DEFAULT_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "centroid": {"temperature": 0.05},
    "knn": {"k": 10},
    "linear": {"C": 1.0},
    "svm": {"C": 0.1},
    "mlp": {"hidden": 256, "alpha": 1e-3, "max_iter": 300},
})


def _scaler(x: npt.NDArray[np.float32]) -> tuple[Arrays, npt.NDArray[np.float32]]:
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    return {"mean": scaler.mean_, "scale": scale}, ((x - scaler.mean_) / scale).astype(np.float32)


def fit(
    strategy: str,
    x: npt.NDArray[np.float32],
    y: Sequence[str],
    groups: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[tuple[str, ...], Arrays, dict[str, Any]]:
    """Fit ``strategy`` on unit embeddings ``x`` and labels ``y``.

    Returns ``(classes, arrays, params)``; ``model_from_arrays`` rebuilds the numpy model.
    For ``centroid``, ``groups`` (e.g. the source task of each prompt) gives one centroid per
    (class, group), so a class made of unlike sources keeps one prototype per source.
    """
    p: dict[str, Any] = {**DEFAULT_PARAMS[strategy], **(params or {})}
    classes = tuple(sorted(set(y)))
    index = {c: i for i, c in enumerate(classes)}
    yi = np.asarray([index[v] for v in y], dtype=np.int64)
    if strategy == "centroid":
        keys = list(zip(y, groups or y, strict=True))
        uniq = sorted(set(keys))
        cents, owner = [], []
        for cls, grp in uniq:
            rows = [i for i, k in enumerate(keys) if k == (cls, grp)]
            c = x[rows].mean(axis=0)
            cents.append(c / np.linalg.norm(c))
            owner.append(index[cls])
        return classes, {"centroids": np.asarray(cents, np.float32),
                         "owner": np.asarray(owner, np.int64)}, p
    if strategy == "knn":
        return classes, {"points": x.astype(np.float32), "labels": yi}, p
    arrays, xs = _scaler(x)
    if strategy == "linear":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=p["C"], max_iter=2000).fit(xs, yi)
        arrays.update(coef=lr.coef_, intercept=lr.intercept_)
    elif strategy == "svm":
        from sklearn.svm import LinearSVC

        svm = LinearSVC(C=p["C"], max_iter=5000, random_state=seed).fit(xs, yi)
        arrays.update(coef=svm.coef_, intercept=np.atleast_1d(svm.intercept_))
    elif strategy == "mlp":
        from sklearn.neural_network import MLPClassifier

        mlp = MLPClassifier(
            hidden_layer_sizes=(int(p["hidden"]),), alpha=p["alpha"], max_iter=int(p["max_iter"]),
            early_stopping=True, random_state=seed,
        ).fit(xs, yi)
        for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        p["layers"] = len(mlp.coefs_)
    else:
        raise ValueError(f"unknown strategy '{strategy}'")
    return classes, arrays, p


def fit_model(
    strategy: str, x: npt.NDArray[np.float32], y: Sequence[str],
    groups: Sequence[str] | None = None, params: Mapping[str, Any] | None = None,
) -> Model:
    """``fit`` and rebuild the numpy model in one go (cross-validation, tests)."""
    classes, arrays, p = fit(strategy, x, y, groups, params)
    return model_from_arrays(strategy, classes, arrays, p)


def save_model(
    directory: Path,
    strategy: str,
    classes: Sequence[str],
    arrays: Arrays,
    params: Mapping[str, Any],
    *,
    kind: str,
    embedder_sha256: str,
    data: Mapping[str, Any],
    metrics: Mapping[str, Any],
    recipe: str,
) -> Path:
    """Write ``weights.npz`` + ``manifest.json`` into ``directory``; returns the manifest path.

    ``kind`` is ``category`` (classes are task categories) or ``strongweak`` (classes are
    ``["weak", "strong"]`` and the router's score is the probability of ``strong``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / "weights.npz"
    plain: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
    np.savez(weights, **plain)
    manifest = {
        "kind": kind,
        "strategy": strategy,
        "classes": list(classes),
        "params": dict(params),
        "embedder": {"model_int8.onnx": embedder_sha256},
        "training": {"data": dict(data), "recipe": recipe},
        "metrics": dict(metrics),
        "files": {"weights.npz": sha256_file(weights)},
    }
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, default=float) + "\n")
    return path
