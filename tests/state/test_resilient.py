"""Redis outages: fail-open serves from local state, fail-closed refuses, both recover.

A real redis-server per test is killed, frozen and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Literal

import pytest

from extproc.config.settings import Settings
from extproc.state import (
    Bucket,
    HealthRule,
    ResilientStateStore,
    StateUnavailable,
    build_state_store,
)
from tests.fixtures.redis_server import RedisServer

HOUR_MS = 3_600_000
BUCKET = Bucket("team:team:t", "team", 3, 1000, HOUR_MS)
RULE = HealthRule(True, 2, 5000, 5000, frozenset({429}), frozenset({5}))
Factory = Callable[[Literal["open", "closed"]], ResilientStateStore]


@pytest.fixture
async def make_store(own_redis: RedisServer) -> AsyncIterator[Factory]:
    made: list[ResilientStateStore] = []

    def make(mode: Literal["open", "closed"]) -> ResilientStateStore:
        settings = Settings(
            state_backend="redis",
            redis_url=own_redis.url,
            redis_prefix="r:",
            redis_timeout_ms=300,
            state_failure_mode=mode,
        )
        store = build_state_store(settings, probe_interval_s=0.1)
        assert isinstance(store, ResilientStateStore)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.aclose()


async def until_recovered(store: ResilientStateStore, timeout: float = 5.0) -> None:
    """Keep making requests (probes are triggered by calls) until Redis is used again."""
    deadline = time.monotonic() + timeout
    while not store.available:
        assert time.monotonic() < deadline, "the store did not recover"
        with contextlib.suppress(StateUnavailable):
            await store.consume([BUCKET], 1)
        await asyncio.sleep(0.05)


async def test_fail_open_keeps_serving_on_local_state(
    make_store: Factory, own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store("open")
    first = await store.consume([BUCKET], 10)
    assert first.allowed and first.reservation is not None
    assert first.reservation.origin == "redis"
    own_redis.kill()
    caplog.set_level(logging.INFO, logger="routeiq.state")
    results = [await store.consume([BUCKET], 10) for _ in range(50)]
    # Local state starts empty: its own budget of 3 is enforced exactly.
    assert [r.allowed for r in results[:4]] == [True, True, True, False]
    assert all(r.reservation is None or r.reservation.origin == "memory" for r in results)
    assert not store.available and store.stats.degraded
    assert store.stats.outages == 1
    assert store.stats.fallback_calls == 50
    assert store.stats.probes <= 6  # probes are paced, not one per request
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert str(own_redis.port) not in caplog.text and "redis://" not in caplog.text
    # Other operations keep working locally and never raise.
    await store.set_affinity("s", "small", 10)
    assert await store.get_affinity("s", 10) == "small"
    assert not await store.record_outcome("small", 500, RULE)
    assert await store.record_outcome("small", 500, RULE)
    assert await store.cooling_backends() == frozenset({"small"})
    await store.reconcile(first.reservation, 5)  # held by Redis: dropped, counted
    assert store.stats.reconciles_dropped == 1
    local = results[0].reservation
    assert local is not None
    await store.reconcile(local, 500)
    (status,) = await store.limit_status([BUCKET])
    assert status.tokens_remaining == 1000 - 3 * 10 - 490


async def test_fail_closed_refuses_with_503(make_store: Factory, own_redis: RedisServer) -> None:
    store = make_store("closed")
    assert (await store.consume([BUCKET], 10)).allowed
    own_redis.kill()
    for _ in range(3):
        with pytest.raises(StateUnavailable) as info:
            await store.consume([BUCKET], 10)
    err = info.value
    assert err.status == 503 and err.code == "state_unavailable"
    assert b"temporarily unavailable" in err.body()
    assert ("retry-after", "1") in err.headers
    with pytest.raises(StateUnavailable):
        await store.cooling_backends()
    with pytest.raises(StateUnavailable):
        await store.get_affinity("s", 10)
    # Response-path calls have nobody left to refuse: they never raise.
    assert not await store.record_outcome("b", 500, RULE)
    await store.set_affinity("s", "b", 10)
    assert store.stats.outages == 1
    assert store.stats.refused_unavailable == 5


async def test_recovers_when_redis_returns(make_store: Factory, own_redis: RedisServer) -> None:
    store = make_store("open")
    assert (await store.consume([BUCKET], 10)).allowed
    own_redis.kill()
    assert (await store.consume([BUCKET], 10)).reservation.origin == "memory"  # type: ignore[union-attr]
    own_redis.start()  # same port, empty (no persistence)

    await until_recovered(store)
    assert store.stats.recoveries == 1 and not store.stats.degraded
    again = await store.consume([BUCKET], 10)
    assert again.reservation is not None and again.reservation.origin == "redis"
    assert again.statuses[0].requests_remaining == 2  # fresh Redis: a full bucket


async def test_closed_mode_recovers_too(make_store: Factory, own_redis: RedisServer) -> None:
    store = make_store("closed")
    own_redis.kill()
    with pytest.raises(StateUnavailable):
        await store.consume([BUCKET], 1)
    own_redis.start()
    await until_recovered(store)
    assert (await store.consume([BUCKET], 1)).allowed
    assert store.stats.recoveries == 1


async def test_frozen_redis_never_hangs_a_request(
    make_store: Factory, own_redis: RedisServer
) -> None:
    store = make_store("open")
    assert (await store.consume([BUCKET], 1)).allowed  # connection established
    own_redis.pause()
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(store.consume([BUCKET], 1) for _ in range(20)))
        elapsed = time.monotonic() - started
        assert all(r.reservation is not None for r in results[:3])
        assert elapsed < 1.0  # one 300 ms timeout, not one per request
        assert store.stats.outages == 1
        started = time.monotonic()
        await store.cooling_backends()
        assert time.monotonic() - started < 0.05  # down: answered locally, no Redis call
    finally:
        own_redis.resume()
    await until_recovered(store)
    assert store.stats.recoveries == 1
