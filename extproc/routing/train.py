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
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import sha256_file
from extproc.routing.classifiers import Model
from extproc.routing.strategies import Arrays, get_strategy, model_from_arrays


def fit(
    strategy: str,
    x: npt.NDArray[np.float32],
    y: Sequence[str],
    groups: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> tuple[tuple[str, ...], Arrays, dict[str, Any]]:
    """Fit ``strategy`` (see ``extproc.routing.strategies``) on unit embeddings ``x`` and
    labels ``y``; returns ``(classes, arrays, params)``, from which ``model_from_arrays``
    rebuilds the numpy model. ``groups`` (e.g. each prompt's source task) lets a strategy
    keep one prototype per source (``centroid`` does)."""
    chosen = get_strategy(strategy)
    p: dict[str, Any] = {**chosen.default_params, **(params or {})}
    classes = tuple(sorted(set(y)))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.asarray([index[v] for v in y], dtype=np.int64)
    arrays, fitted = chosen.fit(x, labels, classes, groups, p, seed)
    return classes, arrays, fitted


def fit_model(
    strategy: str,
    x: npt.NDArray[np.float32],
    y: Sequence[str],
    groups: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
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
