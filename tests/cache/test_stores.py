"""The store contract, for the memory store and the real Redis store alike: tenants
never share, TTL and per-tenant limits hold, the vector scan finds the closest entry
of a frame; a Redis that dies is skipped (guard) and used again once it is back."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from extproc.cache.guard import GuardedStore
from extproc.cache.memory import MemoryCacheStore
from extproc.cache.redis_store import RedisCacheStore
from extproc.cache.spec import CacheSpec
from extproc.cache.stats import CacheStats
from extproc.cache.store import CacheStore
from extproc.cache.types import Entry
from tests.fixtures.redis_server import RedisServer

SPEC = CacheSpec(enabled=True)


def entry(key: str, body: bytes = b'{"answer":1}') -> Entry:
    return Entry(key, body, "eco", "gpt-4o-mini", 10, 5, time.time())


def unit(seed: int, near: np.ndarray | None = None, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(384).astype(np.float32)
    if near is not None:
        v = near + noise * v
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[CacheStore]:
    if request.param == "memory":
        s: CacheStore = MemoryCacheStore()
    else:
        prefix = f"t{time.monotonic_ns()}:"
        s = RedisCacheStore.connect(redis_server.url, prefix=prefix, timeout_s=0.5)
    yield s
    await s.aclose()


async def test_get_put_and_tenant_isolation(store: CacheStore) -> None:
    assert await store.get("team:a", "k") is None
    assert await store.put("team:a", entry("k"), None, None, SPEC) == 0
    got = await store.get("team:a", "k")
    assert got is not None and got.body == b'{"answer":1}' and got.backend == "eco"
    assert (got.prompt_tokens, got.completion_tokens) == (10, 5)
    assert await store.get("team:b", "k") is None
    v = unit(1)
    await store.put("team:a", entry("s"), "frame", v, SPEC)
    assert (await store.nearest("team:b", "frame", v, 10, 0.5)) == (None, None)


async def test_nearest_finds_the_closest_entry_above_the_threshold(store: CacheStore) -> None:
    base = unit(1)
    await store.put("t", entry("far"), "f", unit(2), SPEC)
    await store.put("t", entry("near"), "f", base, SPEC)
    hit, score = await store.nearest("t", "f", unit(3, near=base, noise=0.01), 10, 0.9)
    assert hit is not None and hit.key == "near" and score is not None and 0.9 <= score < 1
    miss, best = await store.nearest("t", "f", unit(4), 10, 0.9)
    assert miss is None and best is not None and best < 0.9
    assert await store.nearest("t", "other-frame", base, 10, 0.0) == (None, None)


async def test_scan_is_bounded_to_the_newest_entries(store: CacheStore) -> None:
    old = unit(1)
    await store.put("t", entry("old"), "f", old, SPEC)
    for i in range(5):
        await store.put("t", entry(f"new{i}"), "f", unit(10 + i), SPEC)
    hit, _ = await store.nearest("t", "f", old, 5, 0.99)
    assert hit is None  # past the 5 newest: not scanned
    hit, _ = await store.nearest("t", "f", old, 6, 0.99)
    assert hit is not None and hit.key == "old"


async def test_per_tenant_limit_evicts_the_oldest(store: CacheStore) -> None:
    small = CacheSpec(enabled=True, max_entries_per_tenant=3)
    evicted = 0
    for i in range(5):
        evicted += await store.put("t", entry(f"k{i}"), "f", unit(i), small)
        await store.put("other", entry(f"k{i}"), None, None, small)
    assert evicted == 2
    assert [await store.get("t", f"k{i}") is not None for i in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip
    hit, _ = await store.nearest("t", "f", unit(0), 10, 0.99)
    assert hit is None  # an evicted entry's vector is gone too
    assert await store.get("other", "k4") is not None


async def test_replacing_an_entry_keeps_one_copy(store: CacheStore) -> None:
    await store.put("t", entry("k", b'{"v":1}'), "f", unit(1), SPEC)
    await store.put("t", entry("k", b'{"v":2}'), "f", unit(1), SPEC)
    got = await store.get("t", "k")
    assert got is not None and got.body == b'{"v":2}'
    small = CacheSpec(enabled=True, max_entries_per_tenant=1)
    assert await store.put("t", entry("k", b'{"v":3}'), "f", unit(1), small) == 0


async def test_redis_entries_expire_with_their_ttl(redis_server: RedisServer) -> None:
    store = RedisCacheStore.connect(redis_server.url, prefix="ttl:", timeout_s=0.5)
    try:
        short = CacheSpec(enabled=True, ttl_seconds=1)
        await store.put("t", entry("k"), "f", unit(1), short)
        assert await store.get("t", "k") is not None
        time.sleep(1.1)
        assert await store.get("t", "k") is None
        assert await store.nearest("t", "f", unit(1), 10, 0.5) == (None, None)
    finally:
        await store.aclose()


async def test_memory_ttl_and_process_limit() -> None:
    now = [0.0]
    store = MemoryCacheStore(clock=lambda: now[0])
    spec = CacheSpec(enabled=True, ttl_seconds=60, max_entries=3)
    await store.put("a", entry("k1"), "f", unit(1), spec)
    now[0] = 30
    await store.put("b", entry("k2"), None, None, spec)
    now[0] = 61
    assert await store.get("a", "k1") is None  # expired
    assert await store.nearest("a", "f", unit(1), 10, 0.5) == (None, None)
    assert await store.get("b", "k2") is not None
    evicted = 0
    for i in range(4):
        evicted += await store.put("c", entry(f"c{i}"), None, None, spec)
    assert len(store) == 3 and evicted == 2  # the oldest tenant gives up first
    assert await store.get("b", "k2") is None


async def test_guard_skips_a_dead_redis_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer().start()
    try:
        stats = CacheStats()
        inner = RedisCacheStore.connect(server.url, prefix="g:", timeout_s=0.2)
        now = [0.0]  # the guard's clock: the retry window does not depend on machine load
        guard = GuardedStore(inner, "redis", stats, retry_s=10.0, clock=lambda: now[0])
        await guard.put("t", entry("k"), None, None, SPEC)
        server.kill()
        with caplog.at_level(logging.WARNING, logger="routeiq.cache"):
            assert await guard.get("t", "k") is None
            assert await guard.nearest("t", "f", unit(1), 5, 0.5) == (None, None)
            assert await guard.put("t", entry("k2"), None, None, SPEC) == 0
        assert not guard.available
        assert (stats.outages, stats.errors) == (1, 1) and stats.skipped == 2
        assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1
        server.start()
        now[0] += 10.0
        await guard.put("t", entry("k3"), None, None, SPEC)
        assert guard.available and await guard.get("t", "k3") is not None
        assert stats.outages == 1
        await guard.aclose()
    finally:
        server.close()
