"""Benchmark: what the shared Redis state adds to RouteIQ's decision path.

Per request the decision path makes three state calls: ``cooling_backends()`` (served
from a 1 s local cache), ``get_affinity()`` (GETEX) and ``consume()`` over two limit
buckets (one EVALSHA). The response path then makes ``reconcile()`` (one EVALSHA).
Both are timed per request against the in-memory store (the baseline, same run) and
against a real redis-server on loopback through the production wrapper
(``build_state_store``: ResilientStateStore over RedisStateStore, redis-py asyncio +
hiredis). Sequential requests give the latency; ``--concurrency`` requests in flight on
one event loop show what a busy process sees.

    .venv/bin/python benchmarks/state_redis.py [--requests 5000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from extproc.api.identity import Caller
from extproc.config.settings import Settings
from extproc.state import (
    StateSpec,
    StateStore,
    build_state_store,
    compile_state_rules,
)
from tests.fixtures.redis_server import RedisServer

SPEC = StateSpec.model_validate(
    {
        "limits": [
            {"name": "team-rpm", "key": "team", "requestsPerWindow": 10**9, "windowSeconds": 60},
            {"name": "key-tpm", "key": "api_key", "tokensPerWindow": 10**12, "windowSeconds": 60},
        ],
        "affinity": {"enabled": True},
    }
)
RULES = compile_state_rules(SPEC)
CALLERS = [Caller(f"team{i % 8}", f"user{i}", f"key{i % 32}") for i in range(256)]


async def one_request(store: StateStore, i: int) -> tuple[float, float]:
    """(decision-path seconds, response-path seconds) of request ``i``."""
    caller = CALLERS[i % len(CALLERS)]
    start = time.perf_counter()
    cooling = await store.cooling_backends()
    backend = await store.get_affinity(f"session{i % 512}", RULES.affinity_ttl_s)
    result = await store.consume(RULES.buckets_for(caller, "gpt-4o"), 600)
    decided = time.perf_counter()
    if backend is None and "small" not in cooling:
        await store.set_affinity(f"session{i % 512}", "small", RULES.affinity_ttl_s)
    reconcile_start = time.perf_counter()
    assert result.reservation is not None
    await store.reconcile(result.reservation, 250)
    return decided - start, time.perf_counter() - reconcile_start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(store: StateStore, requests: int, concurrency: int) -> dict[str, float]:
    for i in range(min(1000, requests)):  # warm: connections, scripts, affinity keys
        await one_request(store, i)
    decide: list[float] = []
    respond: list[float] = []
    for i in range(requests):
        d, r = await one_request(store, i)
        decide.append(d)
        respond.append(r)
    busy: list[float] = []
    started = time.perf_counter()
    for base in range(0, requests, concurrency):
        batch = await asyncio.gather(*(one_request(store, base + j) for j in range(concurrency)))
        busy.extend(d for d, _ in batch)
    wall = time.perf_counter() - started
    return {
        "p50": statistics.median(decide) * 1e3,
        "p99": pct(decide, 0.99) * 1e3,
        "reconcile_p50": statistics.median(respond) * 1e3,
        "busy_p50": statistics.median(busy) * 1e3,
        "busy_p99": pct(busy, 0.99) * 1e3,
        "rps": len(busy) / wall,
    }


async def main(requests: int, concurrency: int) -> None:
    with RedisServer() as server:
        settings = Settings(
            state_backend="redis",
            redis_url=server.url,
            redis_timeout_ms=200,
            state_failure_mode="open",
        )
        results: dict[str, dict[str, float]] = {}
        for name, cfg in (("memory", Settings(state_backend="memory")), ("redis", settings)):
            store = build_state_store(cfg)
            try:
                results[name] = await measure(store, requests, concurrency)
            finally:
                await store.aclose()
            if name == "redis":
                assert store.stats.outages == 0, "Redis timed out during the run"
    mem, red = results["memory"], results["redis"]
    print(
        f"requests={requests} concurrency={concurrency} (decision path: cooling + "
        "affinity + consume over 2 buckets)"
    )
    print(
        f"{'store':8} {'p50 ms':>8} {'p99 ms':>8} {'reconcile p50':>14} "
        f"{'busy p50':>9} {'busy p99':>9} {'req/s busy':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:8} {r['p50']:8.3f} {r['p99']:8.3f} {r['reconcile_p50']:14.3f} "
            f"{r['busy_p50']:9.3f} {r['busy_p99']:9.3f} {r['rps']:11.0f}"
        )
    print(
        f"redis adds {red['p50'] - mem['p50']:.3f} ms at p50 "
        f"({red['p50'] / mem['p50']:.0f}x the in-memory store), "
        f"{red['p99'] - mem['p99']:.3f} ms at p99"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.concurrency))
