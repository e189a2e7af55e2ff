"""Verified loading of model artefacts: every file is checked against its manifest first.

A manifest is a JSON document next to the artefacts with a ``files`` map of
``name -> sha256``. Nothing listed there is opened by a loader before its hash matched,
so a truncated download, a half-finished copy or a tampered file is refused at snapshot
build time with a message an operator can act on, never half-loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.config.errors import ConfigError


class ArtefactError(ConfigError):
    """A routing artefact is missing, unreadable, or does not match its manifest."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed, verified manifest: ``directory`` holds files whose hashes all matched."""

    path: Path
    data: Mapping[str, Any]

    @property
    def directory(self) -> Path:
        return self.path.parent

    def file(self, name: str) -> Path:
        """Path of a verified file; refuses names the manifest does not list."""
        if name not in self.data["files"]:
            raise ArtefactError(f"{self.path}: '{name}' is not listed in the manifest's files")
        return self.directory / name


def read_manifest_json(path: Path) -> Any:
    """The parsed JSON of a manifest, unverified; ``ArtefactError`` when it is missing or
    unreadable."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ArtefactError(f"routing manifest not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ArtefactError(f"routing manifest {path} is unreadable: {exc}") from None


def load_manifest(path: Path) -> Manifest:
    """Read ``path`` and verify the sha256 of every file it lists (before anything loads)."""
    data = read_manifest_json(path)
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not files:
        raise ArtefactError(f"routing manifest {path} has no 'files' map of name -> sha256")
    for name, expected in files.items():
        target = path.parent / name
        if not target.is_file():
            raise ArtefactError(f"{path}: listed file '{name}' is missing from {path.parent}")
        actual = sha256_file(target)
        if actual != expected:
            raise ArtefactError(
                f"{target}: sha256 {actual} does not match the manifest ({expected}); "
                "the file was changed or corrupted: restore it or re-run the recipe "
                f"'{data.get('recipe', '?')}'"
            )
    return Manifest(path=path, data=data)


def load_npz(manifest: Manifest, name: str) -> dict[str, npt.NDArray[Any]]:
    """Arrays of a verified ``.npz``; object arrays are refused (no pickle, ever)."""
    try:
        with np.load(manifest.file(name), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:
        raise ArtefactError(f"{manifest.file(name)}: not a plain numeric npz: {exc}") from None


def trained_on(manifest: Manifest) -> frozenset[str]:
    """sha256 of the embedder an artefact says it was trained on (empty: not recorded).

    Classifier manifests carry ``embedder: {file: sha256}``; need models carry
    ``embedder_sha256``.
    """
    data = manifest.data
    hashes: set[str] = set()
    recorded = data.get("embedder")
    if isinstance(recorded, Mapping):
        hashes.update(v for v in recorded.values() if isinstance(v, str))
    sha = data.get("embedder_sha256")
    if isinstance(sha, str):
        hashes.add(sha)
    return frozenset(hashes)


def check_embedder(manifest: Manifest, fingerprint: str) -> None:
    """Refuse an artefact trained on another embedder than the one loaded.

    Vectors of another model (or another quantisation of the same one) live in another
    space: a classifier fed them still returns scores, confidently wrong ones. An
    artefact that records no embedder, or an embedder without a fingerprint, is let
    through (nothing to compare).
    """
    hashes = trained_on(manifest)
    if not hashes or not fingerprint or fingerprint in hashes:
        return
    trained = ", ".join(sorted(h[:12] for h in hashes))
    training = manifest.data.get("training")
    recipe = manifest.data.get("recipe") or (
        training.get("recipe") if isinstance(training, Mapping) else None
    )
    raise ArtefactError(
        f"{manifest.path}: trained on the embedder with sha256 {trained}..., but the config "
        f"loads one with sha256 {fingerprint[:12]}...: retrain it with this embedder "
        f"(recipe '{recipe or '?'}') or set spec.routing.embedder to the one it was trained on"
    )
