"""Behaviour every ``StateStore`` must have; run against memory and a real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from extproc.state import (
    Bucket,
    HealthRule,
    MemoryStateStore,
    RedisStateStore,
    ResilientStateStore,
    StateStore,
)
from tests.fixtures.redis_server import RedisServer
from tests.state.conftest import redis_store

HOUR_MS = 3_600_000


def rule(threshold: int = 3, window_ms: int = 2000, cooldown_ms: int = 400) -> HealthRule:
    return HealthRule(True, threshold, window_ms, cooldown_ms, frozenset({429}), frozenset({5}))


async def test_budget_admits_exactly_the_limit_under_concurrency(
    stores: tuple[StateStore, StateStore],
) -> None:
    bucket = Bucket("team-hour:team:ml", "team-hour", 50, None, HOUR_MS)
    calls = [stores[i % 2].consume([bucket], 10) for i in range(200)]
    results = await asyncio.gather(*calls)
    allowed = [r for r in results if r.allowed]
    refused = [r for r in results if not r.allowed]
    assert len(allowed) == 50
    assert all(r.retry_after_s is not None and r.retry_after_s > 0 for r in refused)
    assert all(r.statuses[0].requests_remaining == 0 for r in refused)
    assert sorted(r.statuses[0].requests_remaining or 0 for r in allowed) == list(range(50))
    (status,) = await stores[1].limit_status([bucket])
    assert status.requests_remaining == 0


async def test_window_refills_the_bucket(store: StateStore) -> None:
    # 2 requests per second: wide enough that a loaded machine's pauses between the
    # three calls cannot refill the bucket before the third.
    bucket = Bucket("b:user:u", "b", 2, None, 1000)
    assert (await store.consume([bucket], 0)).allowed
    assert (await store.consume([bucket], 0)).allowed
    refused = await store.consume([bucket], 0)
    assert not refused.allowed
    assert refused.retry_after_s is not None and 0 < refused.retry_after_s <= 0.501
    assert refused.refused_by == ("b",)
    await asyncio.sleep(1.05)
    (status,) = await store.limit_status([bucket])
    assert status.requests_remaining == 2
    assert status.reset_requests_s == 0
    assert (await store.consume([bucket], 0)).allowed


async def test_reconcile_refunds_and_charges_tokens(store: StateStore) -> None:
    bucket = Bucket("tok:team:t", "tok", None, 1000, HOUR_MS)
    first = await store.consume([bucket], 600)
    assert first.allowed and first.reservation is not None
    assert first.statuses[0].tokens_remaining == 400
    assert first.statuses[0].requests_remaining is None
    await store.reconcile(first.reservation, 100)  # answer was shorter than the estimate
    (status,) = await store.limit_status([bucket])
    assert status.tokens_remaining == 900
    second = await store.consume([bucket], 300)
    assert second.reservation is not None
    await store.reconcile(second.reservation, 1500)  # longer than estimated: debt
    (status,) = await store.limit_status([bucket])
    assert status.tokens_remaining == 0
    refused = await store.consume([bucket], 1)
    assert not refused.allowed
    # Debt is 600 tokens at 1000 tokens/hour: about 36 minutes until one token is back.
    assert refused.retry_after_s is not None and 2150 < refused.retry_after_s < 2170


async def test_refusal_consumes_no_bucket(store: StateStore) -> None:
    wide = Bucket("wide:team:t", "wide", 5, 1000, HOUR_MS)
    narrow = Bucket("narrow:user:u", "narrow", 1, None, HOUR_MS)
    assert (await store.consume([wide, narrow], 100)).allowed
    refused = await store.consume([wide, narrow], 100)
    assert not refused.allowed and refused.reservation is None
    assert refused.refused_by == ("narrow",)
    assert [s.refused for s in refused.statuses] == [False, True]
    wide_status, _ = await store.limit_status([wide, narrow])
    assert (wide_status.requests_remaining, wide_status.tokens_remaining) == (4, 900)


async def test_request_larger_than_capacity_can_never_fit(store: StateStore) -> None:
    bucket = Bucket("small:team:t", "small", None, 100, HOUR_MS)
    result = await store.consume([bucket], 101)
    assert not result.allowed
    assert result.retry_after_s is None
    (status,) = await store.limit_status([bucket])
    assert status.tokens_remaining == 100


async def test_affinity_expires_unless_used(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    # A 1 s TTL checked at 0.6 s steps: 0.4 s of slack for a loaded machine each way.
    assert await a.get_affinity("s1", 1.0) is None
    await a.set_affinity("s1", "large", 1.0)
    assert await b.get_affinity("s1", 1.0) == "large"  # seen by the other replica
    await asyncio.sleep(0.6)
    assert await b.get_affinity("s1", 1.0) == "large"  # refreshes the TTL
    await asyncio.sleep(0.6)
    assert await a.get_affinity("s1", 1.0) == "large"
    await asyncio.sleep(1.4)
    assert await a.get_affinity("s1", 1.0) is None


async def test_health_cools_down_after_threshold_and_recovers(
    stores: tuple[StateStore, StateStore],
) -> None:
    a, b = stores
    r = rule(threshold=3, cooldown_ms=500)
    assert not await a.record_outcome("small", 200, r)
    assert not await a.record_outcome("small", 400, r)  # client errors do not count
    assert not await a.record_outcome("small", 503, r)
    assert not await b.record_outcome("small", 429, r)
    assert await a.cooling_backends() == frozenset()
    assert await b.record_outcome("small", 0, r)  # third failure (no response) trips it
    assert await b.cooling_backends() == frozenset({"small"})
    assert not await a.record_outcome("small", 500, r)  # ignored while cooling
    await asyncio.sleep(0.6)
    assert await a.cooling_backends() == frozenset()
    assert await b.cooling_backends() == frozenset()


async def test_health_window_forgets_old_failures(store: StateStore) -> None:
    r = rule(threshold=2, window_ms=200)
    assert not await store.record_outcome("large", 500, r)
    await asyncio.sleep(0.3)
    assert not await store.record_outcome("large", 500, r)
    assert await store.record_outcome("large", 500, r)


async def test_other_replica_sees_cooldown(redis_server: RedisServer, prefix: str) -> None:
    a = redis_store(redis_server, prefix)
    b = redis_store(redis_server, prefix, health_cache_s=0.05)
    try:
        assert await b.cooling_backends() == frozenset()  # cached empty for 50 ms
        r = rule(threshold=1, cooldown_ms=2000)
        assert await a.record_outcome("x", 502, r)
        await asyncio.sleep(0.06)
        assert await b.cooling_backends() == frozenset({"x"})
    finally:
        await a.aclose()
        await b.aclose()


async def test_scripts_reload_after_script_flush(own_redis: RedisServer, prefix: str) -> None:
    store = redis_store(own_redis, prefix)
    admin = aioredis.Redis.from_url(own_redis.url)
    try:
        bucket = Bucket("f:team:t", "f", 3, None, HOUR_MS)
        assert (await store.consume([bucket], 0)).allowed
        await admin.script_flush()
        result = await store.consume([bucket], 0)
        assert result.allowed and result.statuses[0].requests_remaining == 1
        await store.set_affinity("s", "b", 10)
        await store.record_outcome("b", 500, rule())
        keys = [k.decode() if isinstance(k, bytes) else k for k in await admin.keys("*")]
        assert len(keys) == 3 and all(k.startswith(prefix) for k in keys)
        ttl = await admin.pttl(f"{prefix}rl:f:team:t")
        assert 0 < ttl <= 2 * 1_200_000 + 1000  # expires once full: 2 of 3 used, 1 h window
    finally:
        await store.aclose()
        await admin.aclose()


async def test_ping(store: StateStore) -> None:
    assert await store.ping()


async def test_every_store_satisfies_the_protocol(redis_server: RedisServer) -> None:
    redis = RedisStateStore.connect(redis_server.url, prefix="p:", timeout_s=1.0)
    resilient = ResilientStateStore(redis, mode="open")
    try:
        for store in (redis, resilient, MemoryStateStore()):
            assert isinstance(store, StateStore)
    finally:
        await resilient.aclose()
