"""Benchmark: what the answer cache costs and saves, through Envoy and in process.

Through Envoy (the shipped config, ``--concurrency 1``, a fast upstream answering
every request at once), one keep-alive client sends requests one after another and
the latency of each is recorded, for:

- ``direct``: Envoy straight to the upstream (no ext_proc): the floor;
- ``explicit``: through RouteIQ, explicit model, no cache (``benchmarks/lean.yaml``);
- ``hit``: the same request answered from the cache (``lean.yaml`` + ``cache``);
- ``miss exact`` / ``miss semantic``: every prompt new, so every request is looked up,
  routed, and its answer read and stored (semantic: also embedded and scanned against
  up to ``scanLimit`` entries of the same frame).

Each row prints its percentiles, its latency added over ``direct`` and its ratio to
``explicit`` (same run, same machine). In process, ``decide()`` alone is timed the
same ways (median per call), which isolates the lookup from the proxy.

Also the semantic threshold table on the paraphrase set (``--paraphrases``).

    .venv/bin/python benchmarks/cache.py [--requests 400] [--paraphrases]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import REPO, start_proxy, start_upstream

from extproc.api.openai import Endpoint, parse_request
from extproc.cache.capture import ResponseCapture
from extproc.cache.evaluate import load_set, threshold_table
from extproc.cache.service import AnswerCache
from extproc.config.settings import Settings
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.demo.processes import ManagedProcess, free_port, start_routeiq
from extproc.routing.embedder import load_embedder
from extproc.routing.router import default_models_dir

LEAN = REPO / "benchmarks" / "lean.yaml"
PARAPHRASES = REPO / "tests" / "cache" / "paraphrases.jsonl"
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.98)
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
ROUNDS = 3


def word(i: int) -> str:
    """A different digit-free word per ``i``: new prompts that share one frame."""
    out = ""
    while True:
        out += _LETTERS[i % 26]
        i //= 26
        if not i:
            return out


def body(text: str) -> bytes:
    return json.dumps(
        {"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": text}]}
    ).encode()


def config_with_cache(work: Path, semantic: bool) -> Path:
    doc = yaml.safe_load(LEAN.read_text())
    doc["spec"]["cache"] = {"enabled": True, "semantic": {"enabled": semantic}}
    path = work / f"cache-{'semantic' if semantic else 'exact'}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def latencies(port: int, bodies: Callable[[int], bytes], n: int, warmup: int) -> np.ndarray:
    """Milliseconds per request, sequential on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for i in range(warmup + n):
            payload = bodies(i)
            start = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", payload, HEADERS)
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - start) * 1000
            if response.status != 200:
                raise SystemExit(f"status {response.status} on port {port}")
            if i >= warmup:
                out.append(elapsed)
    finally:
        conn.close()
    return np.asarray(out)


@contextmanager
def routeiq(config: Path, work: Path) -> Iterator[int]:
    port = free_port()
    env = {"ROUTEIQ_DECISION_LOG": "off", "ROUTEIQ_ANALYSIS_THREADS": "1"}
    proc: ManagedProcess = start_routeiq(config, port, work, env)
    try:
        yield port
    finally:
        proc.stop()


def envoy_rows(args: argparse.Namespace, work: Path) -> list[tuple[str, np.ndarray]]:
    """Every path measured in ``ROUNDS`` interleaved rounds, so that drift in the
    machine's load spreads over all rows instead of favouring the first ones."""
    same = body("Say hello to the benchmark.")
    with ExitStack() as stack:
        upstream, up_port = start_upstream(work)
        stack.callback(upstream.stop)

        def through(routeiq_port: int | None) -> int:
            proc, port = start_proxy(work, up_port, routeiq_port)
            stack.callback(proc.stop)
            return port

        direct = through(None)
        explicit = through(stack.enter_context(routeiq(LEAN, work)))
        exact = through(stack.enter_context(routeiq(config_with_cache(work, False), work)))
        semantic = through(stack.enter_context(routeiq(config_with_cache(work, True), work)))
        latencies(exact, lambda i: same, 1, 0)  # stored: every later one is a hit
        counter = iter(range(10**9))
        fresh = lambda i: body(f"Tell me something about {word(next(counter))}.")  # noqa: E731
        paths: list[tuple[str, int, Callable[[int], bytes]]] = [
            ("direct", direct, lambda i: same),
            ("explicit", explicit, lambda i: same),
            ("hit", exact, lambda i: same),
            ("explicit, new prompts", explicit, fresh),
            ("miss exact", exact, fresh),
            ("miss semantic", semantic, fresh),
        ]
        samples: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in paths}
        per_round = max(1, args.requests // ROUNDS)
        for _ in range(ROUNDS):
            for name, port, bodies in paths:
                samples[name].append(latencies(port, bodies, per_round, 20))
    return [(name, np.concatenate(parts)) for name, parts in samples.items()]


def print_envoy(rows: list[tuple[str, np.ndarray]]) -> None:
    floor = float(np.percentile(rows[0][1], 50))
    by_name = dict(rows)
    print(f"\nThrough Envoy, sequential, {len(by_name['explicit'])} requests per row (ms);")
    print("ratio: added p50 over the explicit path with the same prompts (repeated or new)")
    print(f"{'path':<24}{'p50':>8}{'p90':>8}{'p99':>8}{'added p50':>11}{'vs explicit':>13}")
    for name, ms in rows:
        p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
        added = p50 - floor
        base = by_name["explicit, new prompts" if name.startswith("miss") else "explicit"]
        base_added = float(np.percentile(base, 50)) - floor
        ratio = "" if name.startswith(("direct", "explicit")) else f"{added / base_added:>12.2f}x"
        print(f"{name:<24}{p50:>8.2f}{p90:>8.2f}{p99:>8.2f}{added:>11.2f}{ratio:>13}")


async def in_process(n: int) -> list[tuple[str, float]]:
    """Median microseconds per decide() call, per path."""
    work = Path(tempfile.mkdtemp(prefix="routeiq-cache-bench-"))
    plain = build_snapshot(LEAN)
    exact = build_snapshot(config_with_cache(work, False))
    semantic = build_snapshot(config_with_cache(work, True))
    cache = AnswerCache(Settings())

    def parsed(text: str) -> Any:
        return parse_request(
            Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", HEADERS, body(text)
        )

    async def timed(snap: Any, text: Callable[[], str], count: int) -> list[float]:
        samples = []
        for _ in range(count):
            request = parsed(text())
            start = time.perf_counter()
            d = await decide(request, snap, cache=cache)
            samples.append((time.perf_counter() - start) * 1e6)
            if d.cache is not None and d.cache.ticket is not None:
                capture = ResponseCapture(
                    stream=False, encoding="", max_bytes=65536, prompt_tokens=9
                )
                capture.feed(_ANSWER)
                await cache.save(d.cache.ticket, capture.finish(), "eco")
        return samples

    counter = iter(range(10**9))
    same = "Say hello to the benchmark."
    paths: list[tuple[str, Any, Callable[[], str]]] = [
        ("explicit, no cache", plain, lambda: f"Tell me about {word(next(counter))}."),
        ("hit (exact)", exact, lambda: same),
        ("miss exact", exact, lambda: f"Tell me about {word(next(counter))}."),
        ("miss semantic", semantic, lambda: f"Describe {word(next(counter))}."),
    ]
    for _, snap, text in paths:  # warm up; the first ``same`` is stored
        await timed(snap, text, 20)
    samples: dict[str, list[float]] = {name: [] for name, _, _ in paths}
    for _ in range(ROUNDS):
        for name, snap, text in paths:
            samples[name] += await timed(snap, text, max(1, n // ROUNDS))
    await cache.aclose()
    return [(name, statistics.median(values)) for name, values in samples.items()]


_ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }
).encode()


def print_in_process(rows: list[tuple[str, float]]) -> None:
    base = rows[0][1]
    print("\ndecide() in process, median per call (µs)")
    for name, us in rows:
        print(f"{name:<24}{us:>10.1f}{us / base:>10.2f}x")


def print_paraphrases() -> None:
    embedder = load_embedder(default_models_dir() / "embedder" / "manifest.json", threads=1)
    rows = load_set(PARAPHRASES)
    table = threshold_table(embedder, rows, THRESHOLDS)
    paraphrases = table[0].paraphrases
    print(f"\nParaphrase set: {len(rows)} questions, {paraphrases} paraphrases, "
          f"{table[0].lookups - paraphrases} different questions")  # fmt: skip
    print(f"{'threshold':>10}{'hits':>6}{'right':>7}{'wrong':>7}{'precision':>11}{'recall':>8}")
    for r in table:
        print(f"{r.threshold:>10.2f}{r.hits:>6}{r.right:>7}{r.wrong:>7}"
              f"{r.precision:>11.3f}{r.recall:>8.3f}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--paraphrases", action="store_true", help="also the threshold table")
    parser.add_argument("--no-envoy", action="store_true", help="in-process figures only")
    args = parser.parse_args()
    if args.paraphrases:
        print_paraphrases()
    print_in_process(asyncio.run(in_process(args.requests)))
    if not args.no_envoy:
        work = Path(tempfile.mkdtemp(prefix="routeiq-cache-bench-"))
        print_envoy(envoy_rows(args, work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
