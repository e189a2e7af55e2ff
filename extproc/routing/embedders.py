"""Embedder kinds: what every embedder offers, and the registry that loads one by kind.

An embedder directory's ``manifest.json`` names its ``kind``:

- ``embedder``: all-MiniLM-L6-v2 in ONNX (:mod:`extproc.routing.embedder`), a
  transformer run per text (milliseconds);
- ``static-embedder``: one vector per token distilled from that model
  (:mod:`extproc.routing.static_embedder`), a gather and a sum per text (tens of
  microseconds, a little less accurate; docs/routing.md, "Static embedder").

The router, the trainers and the scorers take any :class:`TextEmbedder`; classifiers
and need models record the ``fingerprint`` of the embedder they were trained on, and
the router refuses to mix them (:func:`extproc.routing.artefacts.check_embedder`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import ArtefactError, read_manifest_json
from extproc.routing.text_cache import TextCache

Vector = npt.NDArray[np.float32]
DEFAULT_CACHE_ENTRIES = 4096


class TextEmbedder(Protocol):
    """Text -> L2-normalised vectors; ``embed`` is the per-request call (maybe cached)."""

    max_tokens: int
    model: str
    fingerprint: str
    cache: TextCache[Vector] | None
    # Texts up to this length are cheap enough to embed on the event loop (0: never).
    inline_chars: int
    # Whether cosine similarity tells a paraphrase from a different question well enough
    # for the semantic cache (measured on tests/cache/paraphrases.jsonl, docs/cache.md).
    matches_paraphrases: bool

    @property
    def dimensions(self) -> int: ...

    def cached(self, text: str) -> bool: ...

    def embed(self, text: str) -> Vector: ...

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def embed_many(
        self,
        texts: Sequence[str],
        batch: int = ...,
        on_batch: Callable[[int], object] | None = ...,
    ) -> npt.NDArray[np.float32]: ...


class Loader(Protocol):
    def __call__(
        self, manifest: Path, *, max_tokens: int, threads: int, keep: str, cache_entries: int
    ) -> TextEmbedder: ...


def _onnx(
    manifest: Path, *, max_tokens: int, threads: int, keep: str, cache_entries: int
) -> TextEmbedder:
    from extproc.routing.embedder import load_embedder

    return load_embedder(manifest, None, max_tokens, threads, keep, cache_entries)


def _static(
    manifest: Path, *, max_tokens: int, threads: int, keep: str, cache_entries: int
) -> TextEmbedder:
    from extproc.routing.static_embedder import load_static_embedder

    del threads  # a gather and a sum: nothing to parallelise
    return load_static_embedder(manifest, max_tokens, keep, cache_entries)


LOADERS: Mapping[str, Loader] = MappingProxyType({"embedder": _onnx, "static-embedder": _static})


def embedder_kind(manifest: Path) -> str:
    """The ``kind`` a manifest declares (``embedder`` when it names none); the loader
    then verifies every hash before anything is opened."""
    data = read_manifest_json(manifest)
    kind = data.get("kind", "embedder") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in LOADERS:
        raise ArtefactError(
            f"{manifest}: kind {kind!r} is not an embedder; known: {sorted(LOADERS)}"
        )
    return kind


def load_text_embedder(
    manifest: Path,
    *,
    max_tokens: int = 128,
    threads: int = 1,
    keep: str = "head",
    cache_entries: int = DEFAULT_CACHE_ENTRIES,
) -> TextEmbedder:
    """Load the embedder ``manifest`` describes, whatever its kind (hashes verified)."""
    loader = LOADERS[embedder_kind(manifest)]
    return loader(
        manifest, max_tokens=max_tokens, threads=threads, keep=keep, cache_entries=cache_entries
    )


def through_cache(
    cache: TextCache[Vector] | None, text: str, compute: Callable[[str], Vector]
) -> Vector:
    """``compute(text)``, or the vector ``cache`` holds for ``text``; a computed vector is
    made read-only before it is cached, since every later hit shares it."""
    if cache is not None:
        hit = cache.get(text)
        if hit is not None:
            return hit
    vec = compute(text)
    if cache is not None:
        vec.flags.writeable = False
        cache.put(text, vec)
    return vec


def timed_embed(embedder: TextEmbedder, text: str) -> tuple[Vector, float]:
    """``embed`` plus its wall time in milliseconds (for ``Classification.embed_ms``)."""
    start = time.perf_counter()
    vec = embedder.embed(text)
    return vec, (time.perf_counter() - start) * 1000.0
