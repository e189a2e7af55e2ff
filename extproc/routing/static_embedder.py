"""Static sentence embeddings: the mean of per-token vectors distilled from MiniLM.

``models/static/embedder`` (made by :mod:`extproc.routing.static_distill`) holds one
vector per WordPiece token, already weighted. A text's embedding is the L2-normalised
sum of its tokens' rows: a tokenization, a gather and a sum, no model run, so a short
prompt costs tens of microseconds instead of milliseconds (``benchmarks/static_embedding.py``).
The public surface is the one of :class:`extproc.routing.embedder.Embedder`, so the
router, the trainers and the scorers can take either.

Input is bounded: at most ``max_tokens`` tokens (8..512) are kept, from the head or the
tail, and only ``max_tokens * CHARS_PER_TOKEN`` characters are tokenized, so the cost of
one call is bounded whatever the caller passes. The vectors file is read with
``allow_pickle=False`` after its sha256 matched the manifest; nothing else is opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from extproc.routing.artefacts import ArtefactError, Manifest, load_manifest
from extproc.routing.embedders import through_cache
from extproc.routing.text_cache import TextCache

Vector = npt.NDArray[np.float32]
MAX_TOKENS_LIMIT = 512
# Characters read per allowed token before tokenizing: the tokenizer works on the whole
# string before it truncates, so without a cut a 1 MB prompt would cost its full length.
# English WordPiece tokens average 4-5 characters; 32 leaves room for long words and
# whitespace runs, and bounds the work at 16k characters for 512 tokens.
CHARS_PER_TOKEN = 32
DEFAULT_CACHE_ENTRIES = 4096
# Texts this short are classified on the event loop (tokenizer, sum, need features,
# centroid): at most 0.7 ms measured with adversarial 500-character texts (one token per
# CJK character; 0.5 ms for digits or punctuation), less than the analysis pool's hop
# costs a server. At 1000 characters the worst case was 1.2 ms.
INLINE_CHARS = 500


class StaticEmbedder:
    """Text -> L2-normalised vectors from a token table; build with :func:`load_static_embedder`."""

    def __init__(
        self,
        vectors: npt.NDArray[np.float16] | npt.NDArray[np.float32],
        tokenizer: Tokenizer,
        max_tokens: int,
        model: str,
        cache_entries: int = 0,
        keep: str = "head",
        fingerprint: str = "",
    ) -> None:
        # float32 in memory (47 MB for the shipped table, twice the float16 file): the
        # gather and sum of one short text take about 5 us instead of 18 us.
        self._vectors: npt.NDArray[np.float32] = np.ascontiguousarray(vectors, dtype=np.float32)
        self._tokenizer = tokenizer
        self._fallback = np.asarray([tokenizer.token_to_id("[UNK]") or 0], dtype=np.int64)
        self._chars = max_tokens * CHARS_PER_TOKEN
        self._tail = keep == "tail"
        self.max_tokens = max_tokens
        self.model = model
        # sha256 of vectors.npy: what artefacts trained on these vectors record as their
        # embedder (extproc.routing.artefacts.check_embedder), never MiniLM's.
        self.fingerprint = fingerprint
        # Texts up to this many characters are embedded (and classified) on the event
        # loop instead of the analysis pool (extproc.pipeline.analyze; see INLINE_CHARS).
        self.inline_chars = INLINE_CHARS
        # A bag of tokens: questions sharing their words score as paraphrases (precision
        # 0.27 at the semantic cache's 0.92 on its paraphrase set), so the semantic cache
        # refuses this embedder (extproc.config.snapshot).
        self.matches_paraphrases = False
        self.cache: TextCache[Vector] | None = TextCache(cache_entries) if cache_entries else None

    def cached(self, text: str) -> bool:
        """Whether ``embed(text)`` would be answered from the cache."""
        return self.cache is not None and text in self.cache

    @property
    def dimensions(self) -> int:
        return int(self._vectors.shape[1])

    def embed(self, text: str) -> Vector:
        """One text -> one unit vector (shape ``[dimensions]``); the per-request call.

        The returned array is shared with the cache: callers must not modify it.
        """
        return through_cache(self.cache, text, self._compute)

    def _compute(self, text: str) -> Vector:
        ids = self._tokenizer.encode(self._bounded(text), add_special_tokens=False).ids
        return self._pool(np.asarray(ids, dtype=np.int64))

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Many texts -> ``[n, dimensions]`` (for training, scoring and tests)."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return out
        bounded = [self._bounded(t) for t in texts]
        encs = self._tokenizer.encode_batch(bounded, add_special_tokens=False)
        for row, enc in enumerate(encs):
            out[row] = self._pool(np.asarray(enc.ids, dtype=np.int64))
        return out

    def embed_many(
        self,
        texts: Sequence[str],
        batch: int = 256,
        on_batch: Callable[[int], object] | None = None,
    ) -> npt.NDArray[np.float32]:
        """``embed_batch`` in chunks of ``batch``; ``on_batch(n)`` after each chunk."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), batch):
            chunk = texts[start : start + batch]
            out[start : start + len(chunk)] = self.embed_batch(chunk)
            if on_batch is not None:
                on_batch(len(chunk))
        return out

    def _bounded(self, text: str) -> str:
        """``text`` cut to the characters its kept tokens can come from (see
        ``CHARS_PER_TOKEN``), from the end that truncation keeps."""
        if len(text) <= self._chars:
            return text
        return text[-self._chars :] if self._tail else text[: self._chars]

    def _pool(self, ids: npt.NDArray[np.int64]) -> Vector:
        """Normalised sum of the rows of ``ids`` (``[UNK]`` for a text without tokens);
        the weights are baked into the rows, so the sum is the weighted mean's direction."""
        summed = np.add.reduce(self._vectors.take(ids if len(ids) else self._fallback, axis=0))
        norm = float(np.sqrt(summed @ summed))
        result: Vector = summed / max(norm, 1e-12)
        return result


def load_static_embedder(
    manifest_path: Path,
    max_tokens: int = MAX_TOKENS_LIMIT,
    keep: str = "head",
    cache_entries: int = DEFAULT_CACHE_ENTRIES,
) -> StaticEmbedder:
    """Verify the manifest's hashes, then load the token table and the tokenizer.

    ``max_tokens`` (8..512) bounds the tokens read per text; ``keep`` is ``head`` (the
    first ones) or ``tail`` (the last ones).
    """
    manifest: Manifest = load_manifest(manifest_path)
    if not 8 <= max_tokens <= MAX_TOKENS_LIMIT:
        raise ArtefactError(
            f"embedding maxTokens must be within 8..{MAX_TOKENS_LIMIT}, got {max_tokens}"
        )
    if keep not in ("head", "tail"):
        raise ArtefactError(f"embedding truncation must keep 'head' or 'tail', not '{keep}'")
    tokenizer = Tokenizer.from_file(str(manifest.file("tokenizer.json")))
    tokenizer.no_padding()
    tokenizer.enable_truncation(
        max_length=max_tokens, direction="left" if keep == "tail" else "right"
    )
    path = manifest.file("vectors.npy")
    try:
        vectors = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ArtefactError(f"{path}: not a plain numeric array: {exc}") from None
    if vectors.ndim != 2 or vectors.dtype not in (np.float16, np.float32):
        raise ArtefactError(f"{path}: expected a 2-d float16/float32 array, got {vectors.dtype}")
    if vectors.shape[0] != tokenizer.get_vocab_size():
        raise ArtefactError(
            f"{path}: {vectors.shape[0]} rows for a vocabulary of {tokenizer.get_vocab_size()}"
        )
    fingerprint = str(manifest.data["files"]["vectors.npy"])
    return StaticEmbedder(
        vectors, tokenizer, max_tokens, "vectors.npy", cache_entries, keep, fingerprint
    )
