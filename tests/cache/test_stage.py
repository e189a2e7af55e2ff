"""The cache stage inside decide(): after policy, per tenant, charged per the config,
reusing the analyze stage's embedding; a miss carries what the adapter stores."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.api.openai import ParsedRequest
from extproc.cache.capture import ResponseCapture
from extproc.cache.service import AnswerCache
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot
from extproc.decide import decide
from extproc.decision import Decision, Outcome
from extproc.decision_log import DecisionLog
from extproc.state.memory import MemoryStateStore
from tests.cache.conftest import RESEARCH, SUPPORT, chat, completion
from tests.pipeline.test_embedding_cache import CountingOffload

CACHE = {"enabled": True, "semantic": {"enabled": True, "threshold": 0.92}}

POLICY = """
package routeiq

import rego.v1

default decision := {"allowed": true}

decision := {"allowed": true, "cache": false, "rule_ids": ["no-cache"]} if {
	input.routeiq.caller.team == "finance"
}

decision := {"allowed": true, "cache": true, "rule_ids": ["cache-on"]} if {
	input.routeiq.caller.team == "research"
}

decision := {"allowed": false, "message": "no tools here"} if {
	input.routeiq.cache.bypass == "tools"
}
"""


@pytest.fixture
def cache() -> AnswerCache:
    return AnswerCache(Settings())


async def answered(
    request: ParsedRequest, snapshot: Snapshot, cache: AnswerCache, **kw: Any
) -> Decision:
    """decide(), then the response a backend would give stored as the adapter does."""
    d = await decide(request, snapshot, cache=cache, **kw)
    if d.cache is not None and d.cache.ticket is not None:
        capture = ResponseCapture(
            stream=False, encoding="", max_bytes=65536, prompt_tokens=request.prompt_tokens
        )
        capture.feed(completion(f"answer to {request.last_user_text}"))
        assert d.backend is not None
        assert await cache.save(d.cache.ticket, capture.finish(), d.backend)
    return d


async def test_miss_then_exact_hit(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache=CACHE)
    first = await answered(chat(headers=SUPPORT), snap, cache)
    assert first.outcome is Outcome.ROUTED and ("x-routeiq-cache", "miss") in first.response_headers
    hit = await decide(
        chat("  What is the capital of France?\n", headers=SUPPORT), snap, cache=cache
    )
    assert hit.outcome is Outcome.CACHED and hit.backend is None and hit.allowed
    assert hit.cache is not None and hit.cache.answer is not None
    assert orjson.loads(hit.cache.body)["choices"][0]["message"]["content"] == (
        "answer to What is the capital of France?"
    )
    headers = dict(hit.response_headers)
    assert headers["content-type"] == "application/json"
    assert headers["x-routeiq-cache"] == "hit" and headers["x-routeiq-cache-kind"] == "exact"
    assert headers["x-routeiq-decision-id"] == hit.id
    explain = hit.explain["cache"]
    assert explain["status"] == "hit" and explain["backend"] == "eco"
    assert explain["saved_tokens"] == 17
    assert hit.reasons[0] == "cache hit (exact)"
    assert cache.stats.hits["exact"] == 1 and cache.stats.saved_tokens["input"] == 14
    assert cache.stats.saved_usd["eco"] == pytest.approx((14 * 0.15 + 3 * 0.60) / 1e6)


async def test_stream_hit_is_a_replay(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache=CACHE)
    await answered(chat(headers=SUPPORT), snap, cache)
    hit = await decide(
        chat(headers=SUPPORT, stream=True, stream_options={"include_usage": True}),
        snap,
        cache=cache,
    )
    assert hit.cache is not None and dict(hit.response_headers)["content-type"] == (
        "text/event-stream"
    )
    assert hit.cache.body.startswith(b"data: {") and hit.cache.body.endswith(b"data: [DONE]\n\n")
    assert b'"usage":{"prompt_tokens":14' in hit.cache.body


async def test_semantic_hit_reuses_the_analyze_embedding(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache=CACHE)
    assert snap.router is not None and snap.router.embedder.cache is not None
    text_cache = snap.router.embedder.cache
    warm = text_cache.misses  # the snapshot embedded a warm-up text
    offload = CountingOffload()
    stored = chat("How many days are there in a leap year?", headers=SUPPORT, model="eco")
    await answered(stored, snap, cache, offload=offload)
    assert (text_cache.misses - warm, offload.jobs) == (1, 1)  # embedded once, for analyze
    paraphrase = chat("How many days does a leap year have?", headers=SUPPORT, model="eco")
    hit = await decide(paraphrase, snap, cache=cache, offload=offload)
    assert hit.outcome is Outcome.CACHED and hit.cache is not None and hit.cache.answer
    assert hit.cache.answer.kind.value == "semantic" and hit.cache.answer.similarity >= 0.92
    assert (text_cache.misses - warm, offload.jobs) == (2, 2)  # again only analyze embedded
    assert hit.classification is not None  # the analysis still ran (policy input)
    other = await decide(
        chat("How do I bake bread?", headers=SUPPORT, model="eco"), snap, cache=cache
    )
    assert other.outcome is Outcome.ROUTED
    assert other.cache is not None and other.cache.best_similarity is not None
    assert other.cache.best_similarity < 0.92


async def test_explicit_model_embeds_off_the_loop_for_the_semantic_match(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache=CACHE)
    offload = CountingOffload()
    d = await answered(chat(headers=SUPPORT), snap, cache, offload=offload)
    assert offload.jobs == 1 and d.cache is not None and d.cache.ticket is not None
    assert d.cache.ticket.vector is not None and d.cache.ticket.frame is not None
    long_turn = await decide(chat("x " * 300, headers=SUPPORT), snap, cache=cache, offload=offload)
    assert offload.jobs == 1  # too long to match by meaning: exact only, nothing embedded
    assert long_turn.cache is not None and long_turn.cache.reason == "exact only"


async def test_tenants_never_share(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache=CACHE)
    await answered(chat(headers=SUPPORT), snap, cache)
    other = await decide(chat(headers=RESEARCH), snap, cache=cache)
    assert other.outcome is Outcome.ROUTED
    anonymous = await decide(chat(), snap, cache=cache)
    assert anonymous.cache is not None and anonymous.cache.reason == "anonymous"
    assert ("x-routeiq-cache", "bypass") in anonymous.response_headers


async def test_policy_runs_first_and_decides_the_cache(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache, tmp_path: Path
) -> None:
    rego = tmp_path / "policy"
    rego.mkdir()
    (rego / "cache.rego").write_text(POLICY)
    policy = {"engine": "embedded", "modules": [str(rego)]}
    opt_in = {**CACHE, "byDefault": False}
    snap = snapshot_with(cache=opt_in, policy=policy)
    # research: the policy turns the cache on.
    await answered(chat(headers=RESEARCH), snap, cache)
    hit = await decide(chat(headers=RESEARCH), snap, cache=cache)
    assert hit.outcome is Outcome.CACHED and hit.rule_ids == ("cache-on",)
    # support: the policy says nothing and the config caches only on the policy's word.
    d = await decide(chat(headers=SUPPORT), snap, cache=cache)
    assert d.cache is not None and d.cache.reason == "policy"
    # A denial is never answered from the cache, even for a stored request.
    denied = await decide(chat(headers=RESEARCH, tools=[{"type": "function"}]), snap, cache=cache)
    assert denied.outcome is Outcome.DENIED and denied.cache is None
    on = snapshot_with(cache=CACHE, policy=policy)
    finance = {"authorization": "Bearer sk-demo-finance"}
    await answered(chat(headers=finance), on, cache)
    off = await decide(chat(headers=finance), on, cache=cache)
    assert off.outcome is Outcome.ROUTED and off.cache is not None and off.cache.reason == "policy"
    assert off.explain["policy"]["constraints"]["cache"] is False


async def test_hits_are_free_by_default_or_charged_their_usage(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    limits = {
        "limits": [
            {"name": "team-tokens", "key": "team", "tokensPerWindow": 60, "windowSeconds": 600}
        ]
    }
    free = snapshot_with(cache=CACHE, state=limits)
    state = MemoryStateStore()
    await answered(chat(headers=SUPPORT), free, cache, state=state)
    for _ in range(5):  # 17 tokens a hit: free hits never touch the 60-token budget
        d = await decide(chat(headers=SUPPORT), free, cache=cache, state=state)
        assert d.outcome is Outcome.CACHED and d.reservation is None
    charged = snapshot_with(cache={**CACHE, "charge": "usage"}, state=limits)
    outcomes = [
        (await decide(chat(headers=SUPPORT), charged, cache=cache, state=state)).outcome
        for _ in range(5)
    ]
    assert Outcome.CACHED in outcomes and outcomes[-1] is Outcome.DENIED  # 429 when spent
    last = await decide(chat(headers=SUPPORT), charged, cache=cache, state=state)
    assert last.error is not None and last.error.status == 429


async def test_store_failures_never_fail_a_request(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache={**CACHE, "store": "redis"})
    unreachable = AnswerCache(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_ms=50))
    d = await decide(chat(headers=SUPPORT), snap, cache=unreachable)
    assert d.outcome is Outcome.ROUTED and d.cache is not None
    assert "store unavailable" in d.cache.reason
    assert unreachable.stats.outages == 1
    await unreachable.aclose()


async def test_decision_log_lines_say_what_the_cache_did(
    snapshot_with: Callable[..., Snapshot], cache: AnswerCache
) -> None:
    snap = snapshot_with(cache=CACHE)
    log = DecisionLog(None)
    miss = await answered(chat(headers=SUPPORT), snap, cache)
    hit = await decide(chat(headers=SUPPORT), snap, cache=cache)
    bypass = await decide(chat(headers=SUPPORT, n=2), snap, cache=cache)
    lines = [log.decision_document(d, None, 0.001, time.time()) for d in (miss, hit, bypass)]
    assert [line["outcome"] for line in lines] == ["routed", "cached", "routed"]
    assert lines[0]["reasons"][-1] == "cache miss"
    assert lines[1]["reasons"] == ["cache hit (exact)"] and lines[1]["backend"] is None
    assert lines[2]["reasons"][-1] == "cache bypass: n"
