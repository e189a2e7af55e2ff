"""The per-snapshot embedding cache: a repeated prompt is not embedded again."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.pipeline.offload import Offload

REPO = Path(__file__).resolve().parents[2]


class CountingOffload:
    """Runs jobs inline and counts them: a job means the analysis was not cheap."""

    def __init__(self) -> None:
        self.jobs = 0

    async def run(self, job):  # type: ignore[no-untyped-def]
        self.jobs += 1
        return job()

    def close(self) -> None:
        return None


def auto(text: str) -> ParsedRequest:
    body = f'{{"model":"auto","messages":[{{"role":"user","content":"{text}"}}]}}'
    return parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, body.encode()
    )


async def test_same_text_hits_same_snapshot_and_misses_after_a_reload() -> None:
    config = REPO / "config" / "routeiq.yaml"
    first = build_snapshot(config)
    offload = CountingOffload()
    pool: Offload = offload
    try:
        a = await decide(auto("Write a haiku about autumn rain"), first, offload=pool)
        assert offload.jobs == 1  # a miss: embedded off the loop
        assert first.router is not None and first.router.embedder.cache is not None
        b = await decide(auto("Write a haiku about autumn rain"), first, offload=pool)
        assert offload.jobs == 1  # a hit: classified inline, no model run
        assert first.router.embedder.cache.hits >= 1
        if first.router.quality is not None:  # the need model's result is kept too
            assert first.router.needs_seen.hits >= 1
        assert a.classification is not None and b.classification is not None
        assert (a.category, a.needed_tier) == (b.category, b.needed_tier)
        assert a.classification.score == b.classification.score
        other = await decide(auto("Explain TCP slow start"), first, offload=pool)
        assert offload.jobs == 2 and other.classification is not None
    finally:
        first.close()
    reloaded = build_snapshot(config)
    try:
        assert reloaded.router is not None
        assert not reloaded.router.embedder.cached("Write a haiku about autumn rain")
        await decide(auto("Write a haiku about autumn rain"), reloaded, offload=pool)
        assert offload.jobs == 3  # a new snapshot starts cold
    finally:
        reloaded.close()


def test_cached_vectors_equal_fresh_ones_and_cannot_be_modified() -> None:
    snapshot = build_snapshot(REPO / "config" / "routeiq.yaml")
    try:
        assert snapshot.router is not None
        embedder = snapshot.router.embedder
        fresh = embedder.embed_batch(["a sentence to embed"])[0]
        once = embedder.embed("a sentence to embed")
        again = embedder.embed("a sentence to embed")
        assert again is once
        assert np.allclose(once, fresh, atol=1e-5)
        assert not once.flags.writeable
    finally:
        snapshot.close()


async def test_classification_without_a_policy_has_empty_findings(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "apiVersion: routeiq.dev/v1alpha1\nkind: RoutingConfig\nspec:\n"
        f"  routing: {{modelsDir: {REPO / 'models'}}}\n"
        "  backends:\n    - {name: only, cluster: c, models: [m], tier: standard}\n"
    )
    snapshot = build_snapshot(config)
    try:
        d = await decide(auto("Explain TCP slow start"), snapshot)
        assert d.classification is not None
        assert dict(d.findings) == {}
        assert "findings" not in d.explain
    finally:
        snapshot.close()
