"""Embedder kinds come from one registry; the static set routes like the MiniLM one.

``routing.embedder`` names a directory whose manifest says its kind; the shipped
``models/static`` set (static embedder, centroid, need model) is selected with three
settings and refused when mixed with artefacts of the other embedder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from extproc.config.errors import ConfigError
from extproc.config.snapshot import build_snapshot
from extproc.routing import build_router
from extproc.routing.artefacts import ArtefactError
from extproc.routing.embedder import Embedder
from extproc.routing.embedders import LOADERS, embedder_kind, load_text_embedder
from extproc.routing.spec import RoutingSpec
from extproc.routing.static_embedder import StaticEmbedder

from .conftest import MODELS, chat

STATIC_SET: dict[str, Any] = {
    "embedder": "static/embedder",
    "artefacts": {"centroid": "static/centroid"},
    "costQuality": {"premiumShare": 0.3, "model": "static/quality"},
}


def test_each_kind_loads_through_the_registry() -> None:
    onnx = load_text_embedder(MODELS / "embedder" / "manifest.json", cache_entries=0)
    static = load_text_embedder(MODELS / "static" / "embedder" / "manifest.json")
    assert isinstance(onnx, Embedder) and isinstance(static, StaticEmbedder)
    assert set(LOADERS) == {"embedder", "static-embedder"}
    assert onnx.dimensions == static.dimensions == 384
    assert onnx.fingerprint != static.fingerprint
    assert onnx.inline_chars == 0 < static.inline_chars  # which may embed on the loop
    for vector in (onnx.embed("Sort a list."), static.embed("Sort a list.")):
        assert vector.shape == (384,) and np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"kind": "category", "files": {}}))
    with pytest.raises(ArtefactError, match="is not an embedder"):
        embedder_kind(manifest)


def test_the_static_set_routes() -> None:
    router = build_router(RoutingSpec.model_validate(STATIC_SET), MODELS)
    assert isinstance(router.embedder, StaticEmbedder)
    coding = router.classify(chat("Write a Python function that merges two sorted lists."))
    assert coding.category == "coding" and coding.quality is not None
    proof = router.classify(chat("Prove that the square root of 2 is irrational."))
    greeting = router.classify(chat("Hi! How are you today?"))
    assert proof.quality is not None and greeting.quality is not None
    assert proof.quality.need > greeting.quality.need


@pytest.mark.parametrize(
    "override",
    [{"artefacts": {"centroid": "centroid"}}, {"embedder": "embedder"}],
    ids=["minilm-centroid", "minilm-embedder"],
)
def test_mixing_the_sets_is_refused(override: dict[str, Any]) -> None:
    with pytest.raises(ArtefactError, match="trained on the embedder"):
        build_router(RoutingSpec.model_validate({**STATIC_SET, **override}), MODELS)


def test_the_semantic_cache_refuses_the_static_embedder(tmp_path: Path) -> None:
    """Cosine over a bag of tokens scores different questions sharing their words as
    paraphrases (precision 0.27 at 0.92 on tests/cache/paraphrases.jsonl): a config that
    would serve answers by meaning with it is refused, exact matching is fine."""
    config: dict[str, Any] = {
        "apiVersion": "routeiq.dev/v1alpha1",
        "kind": "RoutingConfig",
        "metadata": {"name": "static"},
        "spec": {
            "backends": [{"name": "eco", "cluster": "eco", "models": ["small"], "tier": "eco"}],
            "routing": STATIC_SET,
            "cache": {"enabled": True, "semantic": {"enabled": True}},
        },
    }
    path = tmp_path / "routeiq.yaml"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"cache\.semantic needs an embedder"):
        build_snapshot(path)
    config["spec"]["cache"] = {"enabled": True}
    path.write_text(json.dumps(config))
    snapshot = build_snapshot(path)
    assert snapshot.router is not None and not snapshot.router.embedder.matches_paraphrases
    snapshot.close()
