"""The ONNX embedder matches sentence-transformers, refuses artefacts that do not match
their manifest, and runs its session without spinning threads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from extproc.config.errors import ConfigError
from extproc.routing import build_router
from extproc.routing.artefacts import ArtefactError
from extproc.routing.embedder import ALLOW_SPINNING, Embedder, load_embedder
from extproc.routing.spec import RoutingSpec

from .conftest import MODELS, REPO

FIXTURE = REPO / "tests" / "routing" / "fixtures" / "reference_embeddings.json"


def test_matches_sentence_transformers_reference(embedder: Embedder) -> None:
    ref = json.loads(FIXTURE.read_text())
    expected = np.asarray(ref["vectors"], dtype=np.float32)
    got = np.stack([embedder.embed(s) for s in ref["sentences"]])
    assert got.shape == (len(ref["sentences"]), 384)
    cosines = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    assert cosines.min() > 0.99, cosines
    # Unrelated sentences are not accidentally similar: the check would catch a wrong model.
    assert float(got[0] @ expected[1]) < 0.5


def test_vectors_are_unit_length_and_batch_agrees(embedder: Embedder) -> None:
    texts = ["short", "a much longer sentence about routing prompts to models"]
    batch = embedder.embed_batch(texts)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    single = np.stack([embedder.embed(t) for t in texts])
    assert ((batch * single).sum(axis=1) > 0.98).all()


def test_truncation_is_applied(embedder: Embedder) -> None:
    assert embedder.max_tokens == 128
    long_a = "alpha " * 300 + "the end is about cooking pasta"
    long_b = "alpha " * 300 + "the end is about quantum physics"
    # Both are cut at 128 tokens, so the differing tails are never seen.
    assert float(embedder.embed(long_a) @ embedder.embed(long_b)) > 0.9999


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "embedder"
    shutil.copytree(MODELS / "embedder", target, ignore=shutil.ignore_patterns("*fp32*"))
    return target


def test_tampered_tokenizer_is_refused(tmp_path: Path) -> None:
    target = _copy(tmp_path)
    with (target / "tokenizer.json").open("a") as fh:
        fh.write(" ")
    with pytest.raises(ConfigError, match=r"tokenizer.json: sha256 .* does not match"):
        load_embedder(target / "manifest.json")


def test_tampered_model_is_refused_before_loading(tmp_path: Path) -> None:
    target = _copy(tmp_path)
    (target / "model_int8.onnx").write_bytes(b"not a model")
    with pytest.raises(ArtefactError, match=r"model_int8\.onnx: sha256"):
        load_embedder(target / "manifest.json")


def test_missing_file_and_manifest(tmp_path: Path) -> None:
    target = _copy(tmp_path)
    (target / "tokenizer.json").unlink()
    with pytest.raises(ArtefactError, match=r"'tokenizer\.json' is missing"):
        load_embedder(target / "manifest.json")
    with pytest.raises(ArtefactError, match="manifest not found"):
        load_embedder(tmp_path / "nowhere" / "manifest.json")


def test_tail_truncation_keeps_the_end() -> None:
    tail = load_embedder(MODELS / "embedder" / "manifest.json", max_tokens=32, keep="tail")
    a = tail.embed("alpha " * 300 + "the end is about cooking pasta")
    b = tail.embed("alpha " * 300 + "the end is about quantum physics")
    assert float(a @ b) < 0.95
    with pytest.raises(ArtefactError, match="head' or 'tail"):
        load_embedder(MODELS / "embedder" / "manifest.json", keep="middle")


@pytest.mark.parametrize("threads", [1, 2])
def test_session_never_spins_and_uses_the_given_threads(threads: int) -> None:
    emb = load_embedder(MODELS / "embedder" / "manifest.json", threads=threads)
    options = emb._session.get_session_options()
    assert options.get_session_config_entry(ALLOW_SPINNING) == "0"
    assert options.intra_op_num_threads == threads
    assert options.inter_op_num_threads == 1


def test_thread_count_does_not_change_vectors(embedder: Embedder) -> None:
    one = load_embedder(MODELS / "embedder" / "manifest.json", threads=1)
    text = "Write a Python function that checks whether a string is a palindrome."
    assert float(one.embed(text) @ embedder.embed(text)) > 0.9999


def test_router_builds_its_embedder_with_the_spec_threads() -> None:
    router = build_router(RoutingSpec(threads=1), REPO)
    options = router.embedder._session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry(ALLOW_SPINNING) == "0"
