"""Distil the shipped MiniLM into a static embedding: one vector per vocabulary token.

The Model2Vec idea without torch: every WordPiece token of the shipped tokenizer is run
alone through the shipped int8 ONNX model as ``[CLS] token [SEP]``; the token's vector is
the model's output for that input (``pooling``: ``mean`` of the three positions, as
sentence-transformers pools a sentence, or ``token``, the middle position only). The
vectors are then centred and rotated by PCA (``dims`` components, deterministic signs)
and scaled by a per-token weight (``weighting``: ``none``; ``zipf``, log(2 + id), since
WordPiece ids grow roughly with rarity; ``sif``, a / (a + p(token)) with p counted on the
wordfreq English word list, never on evaluation data). A text's embedding is then the
normalised sum of its tokens' rows (:mod:`extproc.routing.static_embedder`): no model
runs at serving time.

One command (serving venv: onnxruntime + tokenizers + numpy; ``--weighting sif`` needs
the ``wordfreq`` package) writes ``vectors.npy`` (float16), the tokenizer and a
manifest::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python -m \\
        extproc.routing.static_distill --pooling mean --dims 384 --weighting none \\
        --out models/static/embedder

Same model, same options, one thread: same bytes (the recipe is run twice to check).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Tokenizer

from extproc.routing.artefacts import load_manifest, sha256_file

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
POOLINGS = ("mean", "token")
WEIGHTINGS = ("none", "zipf", "sif")
SIF_A = 1e-3
# wordfreq's English list: the most frequent words, enough to cover every whole-word token.
WORDFREQ_WORDS = 200_000
WORDFREQ_LICENCE = (
    "token weights derived from wordfreq 3.1.1 word frequencies: wordfreq's data is "
    "CC-BY-SA 4.0 (attribution, share-alike)"
)
WORDFREQ_VERSION = "3.1.1"  # its word list is data: another version gives other bytes


@dataclass(frozen=True)
class Options:
    """What the artefact is made of (all written to the manifest)."""

    pooling: str = "mean"
    dims: int = 384
    # "none": the shipped choice, licence-clean (sif's counts are CC-BY-SA data) and
    # within a point of sif on the validation split (docs/routing.md, "Static embedder").
    weighting: str = "none"
    batch: int = 512


def session(model: Path) -> ort.InferenceSession:
    """A one-thread CPU session (one thread: deterministic reductions, same bytes)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model), sess_options=options, providers=["CPUExecutionProvider"]
    )


def token_outputs(sess: ort.InferenceSession, vocab: int, batch: int) -> tuple[F32, F32]:
    """The model's output for ``[CLS] t [SEP]`` of every token id ``t``: the mean of the
    three positions and the middle position alone, each ``[vocab, 384]``."""
    mean = np.zeros((vocab, 384), dtype=np.float32)
    token = np.zeros((vocab, 384), dtype=np.float32)
    start = time.perf_counter()
    for lo in range(0, vocab, batch):
        ids = np.arange(lo, min(lo + batch, vocab), dtype=np.int64)
        seq = np.stack([np.full_like(ids, 101), ids, np.full_like(ids, 102)], axis=1)
        feeds = {
            "input_ids": seq,
            "attention_mask": np.ones_like(seq),
            "token_type_ids": np.zeros_like(seq),
        }
        (out,) = sess.run(["token_embeddings"], feeds)
        out = np.asarray(out, dtype=np.float32)
        mean[ids] = out.mean(axis=1)
        token[ids] = out[:, 1]
        if lo // batch % 10 == 0:
            print(
                f"# {ids[-1] + 1}/{vocab} tokens, {time.perf_counter() - start:.0f} s", flush=True
            )
    return mean, token


def pca(x: F32, dims: int) -> F32:
    """``x`` centred and projected on its first ``dims`` principal axes; each axis is
    signed so that its largest-magnitude loading is positive (SVD signs are arbitrary)."""
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:dims]
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    projected: F32 = (centred @ (axes * signs[:, None]).T).astype(np.float32)
    return projected


def wordfreq_counts(tokenizer: Tokenizer, vocab: int) -> F64:
    """Expected occurrences of every token in English text: the frequency of each of the
    wordfreq list's top words, added to every WordPiece token of that word."""
    from wordfreq import top_n_list, word_frequency  # offline recipe only

    installed = metadata.version("wordfreq")
    if installed != WORDFREQ_VERSION:
        raise RuntimeError(f"the recipe pins wordfreq {WORDFREQ_VERSION}, not {installed}")
    counts = np.zeros(vocab, dtype=np.float64)
    words = top_n_list("en", WORDFREQ_WORDS)
    encs = tokenizer.encode_batch(words, add_special_tokens=False)
    for word, enc in zip(words, encs, strict=True):
        np.add.at(counts, np.asarray(enc.ids, dtype=np.int64), word_frequency(word, "en"))
    return counts


def token_weights(kind: str, vocab: int, counts: F64 | None = None) -> F64:
    """Per-token weight: ``none`` (1), ``zipf`` (log(2 + id)), ``sif`` (a / (a + p))."""
    if kind == "none":
        return np.ones(vocab)
    if kind == "zipf":
        return np.log(2.0 + np.arange(vocab, dtype=np.float64))
    if counts is None:
        raise ValueError("sif weighting needs token counts")
    p = counts / counts.sum()
    weights: F64 = SIF_A / (SIF_A + p)
    return weights


def distil(raw: F32, options: Options, counts: F64 | None = None) -> npt.NDArray[np.float16]:
    """The shipped matrix: PCA of ``raw`` (skipped when ``dims`` is 0), then weighted."""
    x = pca(raw, options.dims) if options.dims else raw
    w = token_weights(options.weighting, len(raw), counts)
    return (x * w[:, None]).astype(np.float16)


def write_artefact(
    out: Path, vectors: npt.NDArray[np.float16], tokenizer: Path, meta: dict[str, Any]
) -> Path:
    """``vectors.npy``, ``tokenizer.json`` and a manifest with their sha256; returns the
    manifest path (loaded back once, so a bad write fails here)."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "vectors.npy", vectors, allow_pickle=False)
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    manifest = {
        **meta,
        "dimensions": int(vectors.shape[1]),
        "files": {name: sha256_file(out / name) for name in ("vectors.npy", "tokenizer.json")},
    }
    path = out / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    load_manifest(path)
    return path


def recipe(options: Options, out: Path) -> str:
    return (
        "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m extproc.routing.static_distill "
        f"--pooling {options.pooling} --dims {options.dims} --weighting {options.weighting} "
        f"--out {out.as_posix()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", type=Path, default=Path("models/embedder/manifest.json"))
    parser.add_argument("--out", type=Path, default=Path("models/static/embedder"))
    parser.add_argument("--pooling", choices=POOLINGS, default=Options.pooling)
    parser.add_argument("--dims", type=int, default=Options.dims, help="PCA dims; 0: no PCA")
    parser.add_argument("--weighting", choices=WEIGHTINGS, default=Options.weighting)
    parser.add_argument("--raw-cache", type=Path, help="npz of the model outputs (reused)")
    args = parser.parse_args(argv)
    options = Options(args.pooling, args.dims, args.weighting)
    source = load_manifest(args.embedder)
    model = str(source.data.get("default", "model_int8.onnx"))
    tok_path = source.file("tokenizer.json")
    tokenizer = Tokenizer.from_file(str(tok_path))
    vocab = tokenizer.get_vocab_size()
    if args.raw_cache is not None and args.raw_cache.is_file():
        with np.load(args.raw_cache, allow_pickle=False) as npz:
            mean, token = npz["mean"], npz["token"]
    else:
        mean, token = token_outputs(session(source.file(model)), vocab, options.batch)
        if args.raw_cache is not None:
            args.raw_cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.raw_cache, mean=mean, token=token)
    counts = wordfreq_counts(tokenizer, vocab) if options.weighting == "sif" else None
    vectors = distil(mean if options.pooling == "mean" else token, options, counts)
    meta = {
        "kind": "static-embedder",
        "source": {
            "embedder": source.data.get("source", {}).get("model"),
            "model": model,
            "modelSha256": source.data["files"][model],
            "tokenizerSha256": source.data["files"]["tokenizer.json"],
            "licence": source.data.get("source", {}).get("licence"),
            "weightsLicence": WORDFREQ_LICENCE if options.weighting == "sif" else None,
        },
        "recipe": recipe(options, args.out),
        "distillation": {
            "input": "[CLS] token [SEP] for every vocabulary id, one thread",
            "pooling": options.pooling,
            "pca": f"centred, {options.dims} components" if options.dims else "none",
            "weighting": options.weighting,
            "counts": f"wordfreq {WORDFREQ_VERSION} 'en', top {WORDFREQ_WORDS} words"
            if options.weighting == "sif"
            else None,
        },
        "embedding": "sum of the text's token rows (no [CLS]/[SEP]), then L2 normalise",
        "vocabulary": vocab,
        "dtype": "float16",
    }
    print(write_artefact(args.out, vectors, tok_path, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
