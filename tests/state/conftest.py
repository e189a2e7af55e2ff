"""Fixtures of the state tests: a real redis-server, and each store behind one interface.

One server serves the whole session (each test writes under its own key prefix);
outage tests take ``own_redis``, a server of their own that they may kill.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from extproc.state import MemoryStateStore, RedisStateStore, StateStore
from tests.fixtures.redis_server import RedisServer

# Generous: two shared cores under other engineers' load; outage tests use their own.
TIMEOUT_S = 1.0


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}:"


def redis_store(server: RedisServer, prefix: str, **kw: float) -> RedisStateStore:
    return RedisStateStore.connect(server.url, prefix=prefix, timeout_s=TIMEOUT_S, **kw)


@pytest.fixture(params=["memory", "redis"])
async def stores(
    request: pytest.FixtureRequest, redis_server: RedisServer, prefix: str
) -> AsyncIterator[tuple[StateStore, StateStore]]:
    """Two handles on one shared state: two Redis clients (two replicas), or the same
    memory store twice (one process)."""
    if request.param == "memory":
        mem = MemoryStateStore()
        yield mem, mem
        await mem.aclose()
        return
    a, b = redis_store(redis_server, prefix), redis_store(redis_server, prefix)
    yield a, b
    await a.aclose()
    await b.aclose()


@pytest.fixture
def store(stores: tuple[StateStore, StateStore]) -> StateStore:
    return stores[0]
