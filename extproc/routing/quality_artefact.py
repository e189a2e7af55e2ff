"""Writing a quality (need) model artefact: ``weights.npz`` + ``manifest.json``.

The layout is what :func:`extproc.routing.quality.load_need_model` reads: arrays
``mean``, ``scale``, ``w0..w{L-1}``, ``b0..b{L-1}`` and ``reference_needs`` (sorted
quantiles of the need on the reference prompts, for calibrating shares), plain numeric
(no pickle); the manifest names the kind, the feature list, the head and the sha256 of
every file. The npz is written with fixed member timestamps so the same arrays always
give the same bytes, and the recipe can be checked for reproduction by hash.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import sha256_file
from extproc.routing.quality_features import FEATURE_NAMES

_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: Mapping[str, npt.NDArray[Any]]) -> None:
    """An uncompressed ``.npz`` whose bytes depend only on the arrays (sorted, no mtimes)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(
                buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False
            )
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())


def save_need_model(
    out: Path,
    *,
    mean: npt.NDArray[Any],
    scale: npt.NDArray[Any],
    weights: Sequence[npt.NDArray[Any]],
    biases: Sequence[npt.NDArray[Any]],
    reference_needs: npt.NDArray[Any],
    output: str,
    use_embedding: bool,
    meta: Mapping[str, Any],
) -> Path:
    """Write the artefact into ``out`` and return its manifest path.

    ``meta`` adds the provenance fields (recipe, source, data hashes, metrics, ...).
    """
    out.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, npt.NDArray[Any]] = {
        "mean": np.asarray(mean, dtype=np.float32),
        "scale": np.asarray(scale, dtype=np.float32),
        "reference_needs": np.sort(np.asarray(reference_needs, dtype=np.float64)),
    }
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        arrays[f"w{i}"] = np.asarray(w, dtype=np.float32)
        arrays[f"b{i}"] = np.asarray(b, dtype=np.float32)
    write_npz(out / "weights.npz", arrays)
    manifest = {
        "kind": "quality",
        "strategy": "quality",
        "features": list(FEATURE_NAMES),
        "embedding": use_embedding,
        "layers": len(weights),
        "output": output,
        **meta,
        "files": {"weights.npz": sha256_file(out / "weights.npz")},
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
