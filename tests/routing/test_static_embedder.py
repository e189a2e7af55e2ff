"""The static (distilled) embedder: unit vectors, deterministic, bounded input, and it
refuses artefacts that do not match their manifest or that would need unpickling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from extproc.routing.artefacts import ArtefactError, sha256_file
from extproc.routing.static_distill import Options, distil, pca, write_artefact
from extproc.routing.static_embedder import (
    CHARS_PER_TOKEN,
    StaticEmbedder,
    load_static_embedder,
)

from .conftest import MODELS

STATIC = MODELS / "static" / "embedder"


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return load_static_embedder(STATIC / "manifest.json", max_tokens=128)


def test_unit_vectors_of_the_manifest_dimensions(static: StaticEmbedder) -> None:
    texts = ["hi", "Write a SQL query that joins orders and customers by id.", "", "日本語"]
    batch = static.embed_batch(texts)
    manifest = json.loads((STATIC / "manifest.json").read_text())
    assert static.dimensions == manifest["dimensions"] == batch.shape[1]
    # Artefacts trained on these vectors are told apart from MiniLM's by this hash.
    assert static.fingerprint == manifest["files"]["vectors.npy"]
    assert batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.stack([static.embed(t) for t in texts]), batch, atol=1e-6)
    np.testing.assert_allclose(static.embed_many(texts, batch=3), batch, atol=1e-6)


def test_deterministic_across_loads(static: StaticEmbedder) -> None:
    text = "Summarise the meeting notes below in three bullet points."
    again = load_static_embedder(STATIC / "manifest.json", max_tokens=128, cache_entries=0)
    assert np.array_equal(static.embed(text), again.embed(text))
    assert static.cached(text) and not again.cached(text)


def test_paraphrase_closer_than_unrelated(static: StaticEmbedder) -> None:
    a = static.embed("How do I reverse a list in Python?")
    b = static.embed("What is the way to invert the order of a Python list?")
    c = static.embed("The museum opens at nine on Sunday mornings.")
    assert float(a @ b) > float(a @ c) + 0.2


def test_input_is_cut_at_max_tokens() -> None:
    short = load_static_embedder(STATIC / "manifest.json", max_tokens=16, cache_entries=0)
    head = " ".join(["routing"] * 16)
    assert np.array_equal(short.embed(head + " kubernetes terraform" * 500), short.embed(head))
    tail = load_static_embedder(STATIC / "manifest.json", max_tokens=16, keep="tail")
    assert np.array_equal(tail.embed("kubernetes terraform " * 500 + head), tail.embed(head))
    # Only max_tokens * CHARS_PER_TOKEN characters are tokenized: a huge text costs no more.
    huge = "x" * (16 * CHARS_PER_TOKEN) + " kubernetes" * 100_000
    assert np.array_equal(short.embed(huge), short.embed("x" * (16 * CHARS_PER_TOKEN)))
    with pytest.raises(ArtefactError, match="maxTokens"):
        load_static_embedder(STATIC / "manifest.json", max_tokens=513)


def test_changed_vectors_are_refused(tmp_path: Path) -> None:
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    data = bytearray((copy / "vectors.npy").read_bytes())
    data[-1] ^= 0x01
    (copy / "vectors.npy").write_bytes(bytes(data))
    with pytest.raises(ArtefactError, match="does not match the manifest"):
        load_static_embedder(copy / "manifest.json")


def test_pickled_vectors_are_refused_even_with_matching_hash(tmp_path: Path) -> None:
    copy = tmp_path / "static"
    shutil.copytree(STATIC, copy)
    np.save(copy / "vectors.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["vectors.npy"] = sha256_file(copy / "vectors.npy")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtefactError, match="not a plain numeric array"):
        load_static_embedder(copy / "manifest.json")


def test_recipe_steps_give_the_same_bytes_twice(tmp_path: Path) -> None:
    raw = np.random.default_rng(0).normal(size=(300, 24)).astype(np.float32)
    counts = np.arange(300, dtype=np.float64)
    options = Options(pooling="mean", dims=8, weighting="sif")
    shas = []
    for run in ("a", "b"):
        vectors = distil(raw, options, counts)
        path = write_artefact(tmp_path / run, vectors, STATIC / "tokenizer.json", {"kind": "t"})
        shas.append(json.loads(path.read_text())["files"])
    assert shas[0] == shas[1]
    assert vectors.shape == (300, 8) and vectors.dtype == np.float16
    # PCA axes are signed by their largest loading, not by the SVD: -x gives -projection.
    np.testing.assert_allclose(pca(-raw, 8), -pca(raw, 8), atol=1e-4)
