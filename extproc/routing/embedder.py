"""Sentence embeddings with onnxruntime + tokenizers: all-MiniLM-L6-v2 without torch.

The ONNX graph (exported by :mod:`extproc.routing.export`) returns token embeddings;
this module does what sentence-transformers' ``Pooling`` (mean over the attention mask)
and ``Normalize`` modules do, so vectors match the reference model (cosine > 0.99, see
tests/routing/test_embedder.py). The tokenizer shipped with the model pads and truncates
to 128 on its own: both are reset here so one text costs only its real length, and the
truncation length is an explicit, documented choice (``max_tokens``).

One ``Embedder`` is built per config snapshot and shared by every request; the
onnxruntime session is thread-safe for ``run``. ``embed`` (the per-request call) keeps
the vectors of recent texts in a bounded LRU (``cache_entries``; 0 turns it off), so a
repeated prompt costs a dictionary lookup; the batch calls used by training and
scoring bypass it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from extproc.routing.artefacts import ArtefactError, Manifest, load_manifest
from extproc.routing.embedders import through_cache
from extproc.routing.text_cache import TextCache

Vector = npt.NDArray[np.float32]

# onnxruntime session option (onnxruntime_session_options_config_keys.h): "0" makes idle
# intra-op pool threads wait on a condition variable instead of busy-polling for work.
ALLOW_SPINNING = "session.intra_op.allow_spinning"

# Recent per-request texts whose vectors are kept (384 float32 each: 1.5 KiB, so the
# default costs about 6 MiB per snapshot).
DEFAULT_CACHE_ENTRIES = 4096


class Embedder:
    """Text -> L2-normalised 384-d vectors; build with :func:`load_embedder`."""

    def __init__(
        self,
        session: ort.InferenceSession,
        tokenizer: Tokenizer,
        max_tokens: int,
        model: str,
        cache_entries: int = 0,
        fingerprint: str = "",
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.model = model
        # sha256 of the model file: what the classifiers' manifests record as the
        # embedder they were trained on (extproc.routing.artefacts.check_embedder).
        self.fingerprint = fingerprint
        # A model run costs milliseconds: a text not in the cache is never embedded on
        # the event loop (extproc.pipeline.analyze), whatever its length.
        self.inline_chars = 0
        # Precision 0.946 at the semantic cache's default threshold (docs/cache.md).
        self.matches_paraphrases = True
        self._inputs = {i.name for i in session.get_inputs()}
        self.cache: TextCache[Vector] | None = TextCache(cache_entries) if cache_entries else None

    def cached(self, text: str) -> bool:
        """Whether ``embed(text)`` would be answered from the cache (no model run)."""
        return self.cache is not None and text in self.cache

    @property
    def dimensions(self) -> int:
        return 384

    def embed(self, text: str) -> Vector:
        """One text -> one unit vector (shape ``[384]``); the per-request call.

        The returned array is shared with the cache: callers must not modify it.
        """
        return through_cache(self.cache, text, self._compute)

    def _compute(self, text: str) -> Vector:
        return self._run_one(np.asarray([self._tokenizer.encode(text).ids], dtype=np.int64))

    def embed_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Many texts -> ``[n, 384]``, padded per batch (for training, scoring and tests)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        encs = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for row, enc in enumerate(encs):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = enc.attention_mask
        return self._run(ids, mask)

    def embed_many(
        self,
        texts: Sequence[str],
        batch: int = 32,
        on_batch: Callable[[int], object] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Like ``embed_batch`` in chunks sorted by length, so padding stays small;
        ``on_batch(n)`` is called after each chunk of ``n`` texts (progress counters)."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            out[idx] = self.embed_batch([texts[i] for i in idx])
            if on_batch is not None:
                on_batch(len(idx))
        return out

    def _run_one(self, ids: npt.NDArray[np.int64]) -> Vector:
        """One unpadded text (``ids`` of shape ``[1, n]``): every token counts, so the
        masked mean of :meth:`_run` is the plain mean (the same vector, fewer steps)."""
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (tokens,) = self._session.run(["token_embeddings"], feeds)
        pooled = np.asarray(tokens[0], dtype=np.float32).mean(axis=0, dtype=np.float32)
        norm = float(np.sqrt(pooled @ pooled))
        result: Vector = pooled / max(norm, 1e-12)
        return result

    def _run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> Vector:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (tokens,) = self._session.run(["token_embeddings"], feeds)
        weights = mask[:, :, None].astype(np.float32)
        summed = (np.asarray(tokens, dtype=np.float32) * weights).sum(axis=1)
        pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vector = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return result


def load_embedder(
    manifest_path: Path,
    model_file: str | None = None,
    max_tokens: int = 128,
    threads: int = 2,
    keep: str = "head",
    cache_entries: int = DEFAULT_CACHE_ENTRIES,
) -> Embedder:
    """Verify the manifest's hashes, then load the ONNX model and tokenizer.

    ``model_file`` defaults to the manifest's ``default`` (the int8 model); ``keep`` is
    ``head`` (first ``max_tokens`` tokens) or ``tail`` (last ones). ``threads``
    bounds intra-op parallelism: the server passes ``spec.routing.threads`` (1 runs
    the model on the calling thread, the least CPU per request; more threads cut the
    wall time of long prompts at a higher CPU cost), the offline tools keep 2 for
    batches. Pool threads never spin while idle, and execution is sequential: a
    6-layer encoder on one text gains nothing from inter-op threads.
    """
    manifest: Manifest = load_manifest(manifest_path)
    name = model_file or str(manifest.data.get("default", "model_int8.onnx"))
    if not 8 <= max_tokens <= 512:
        raise ArtefactError(f"embedding maxTokens must be within 8..512, got {max_tokens}")
    tokenizer = Tokenizer.from_file(str(manifest.file("tokenizer.json")))
    tokenizer.no_padding()
    if keep not in ("head", "tail"):
        raise ArtefactError(f"embedding truncation must keep 'head' or 'tail', not '{keep}'")
    tokenizer.enable_truncation(
        max_length=max_tokens, direction="left" if keep == "tail" else "right"
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle pool threads block instead of spinning: with spinning (onnxruntime's default)
    # each run leaves the pool busy-waiting on the other cores, about 2.5x the CPU of
    # the run itself for a short prompt on 2 threads (docs/operations.md, embedder).
    options.add_session_config_entry(ALLOW_SPINNING, "0")
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(manifest.file(name)), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped exceptions
        raise ArtefactError(f"{manifest.file(name)}: onnxruntime refused the model: {exc}") from exc
    fingerprint = str(manifest.data["files"].get(name, ""))
    return Embedder(session, tokenizer, max_tokens, name, cache_entries, fingerprint)
