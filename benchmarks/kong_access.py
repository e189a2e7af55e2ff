"""Benchmark: the Kong plugin's access phase through the real kong-python-pluginserver.

One run, same machine: the harness of ``tests/kong`` plays Kong (MessagePack-RPC over
the plugin server's Unix socket, one PDK round trip per ``plugin.Step``) and times the
whole access event of N sequential requests, with three baselines in the same run:

- ``noop event``: the same plugin server answering an access event of a plugin that
  makes no PDK call (the fixed cost of one event: HandleEvent + handler dispatch);
- ``decide in-process``: ``Runtime.decide`` on a persistent loop, no plugin server;
- ``asyncio.run per call``: what a loop per call would cost instead of the loop thread.

Printed: p50/p99 per path, PDK round trips and RPC messages per request, ratios.

    .venv/bin/python benchmarks/kong_access.py [--requests 2000] [--mode threads|gevent|both]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extproc.api.openai import ParsedRequest, parse_request  # noqa: E402
from extproc.api.paths import match_endpoint  # noqa: E402
from extproc.config.settings import Settings  # noqa: E402
from extproc.runtime import Runtime  # noqa: E402
from tests.kong.harness import Kong, PluginServer, Record, Request  # noqa: E402

CONFIG = REPO / "tests" / "kong" / "routeiq-kong.yaml"
NOOP_PLUGIN = '''"""A plugin whose access phase makes no PDK call: the cost of one event."""
version = "0"
priority = 0
Schema = []


class Plugin:
    def __init__(self, config):
        self.config = config

    def access(self, kong):
        return None
'''
CASES = {
    "explicit": Request.chat("gpt-4o-mini", "Say hello to the benchmark."),
    "alias": Request.chat("mini", "Say hello to the benchmark."),
    "auto": Request.chat("auto", "Write a Python function that merges two sorted lists."),
    "denied": Request.chat("gpt-4o", "Say hello.", x_team="interns"),
}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(n: int, fn: Callable[[], object]) -> list[float]:
    for _ in range(min(50, n)):  # warm-up: first classification, caches
        fn()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: list[float], base: float | None, extra: str = "") -> None:
    p50, p99 = statistics.median(ms), pct(ms, 0.99)
    ratio = f"{p50 / base:6.1f}x" if base else "      "
    print(f"  {name:<28} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  {ratio}  {extra}")


def bench_server(mode: str, n: int, work: Path) -> None:
    plugins = work / f"plugins-{mode}"
    plugins.mkdir()
    shutil.copy(REPO / "kong" / "routeiq.py", plugins / "routeiq.py")
    (plugins / "noop.py").write_text(NOOP_PLUGIN)
    gevent = mode == "gevent"
    (work / mode).mkdir()
    server = PluginServer(work / mode, gevent=gevent, lua_style=not gevent, plugin_dir=plugins)
    with server:
        kong = Kong(server.socket_path)
        noop = kong.start_instance({}, name="noop")
        iid = kong.start_instance(
            {"config_path": str(CONFIG), "timeout_ms": 2000, "buffer_responses": True}
        )
        base = timed(n, lambda: kong.event(noop, "access", Request(), Record()))
        print(
            f"\nplugin server, {mode} mode ({'Python' if gevent else 'Lua'}-style returns),"
            f" {n} sequential requests:"
        )
        row("noop event (baseline)", base, None, "0 PDK calls, 1 RPC")
        b50 = statistics.median(base)
        for name, req in CASES.items():
            access: list[float] = []
            logs: list[float] = []
            rec = Record()
            for i in range(n + 50):  # the first 50: warm-up
                rec = Record()
                t0 = time.perf_counter()
                kong.event(iid, "access", req, rec)
                t1 = time.perf_counter()
                kong.event(iid, "log", req, rec)  # after the response: off the request path
                t2 = time.perf_counter()
                if i >= 50:
                    access.append((t1 - t0) * 1000)
                    logs.append((t2 - t1) * 1000)
            calls = f"{len(rec.pdk_calls['access'])} PDK calls, {rec.rpc_calls['access']} RPC"
            row(f"{name}: access", access, b50, calls)
            log_calls = f"{len(rec.pdk_calls['log'])} PDK calls, {rec.rpc_calls['log']} RPC"
            row(f"{name}: log", logs, None, log_calls)
        kong.close()


def bench_in_process(n: int) -> None:
    runtime = Runtime.create(Settings(config_path=CONFIG, decision_log="off"))
    req = CASES["explicit"]
    endpoint = match_endpoint(req.path)
    assert endpoint is not None
    headers = {k: v if isinstance(v, str) else v[0] for k, v in req.headers.items()}

    def parsed() -> ParsedRequest:
        return parse_request(endpoint, "POST", req.path, headers, req.body)

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    persistent = timed(
        n, lambda: asyncio.run_coroutine_threadsafe(runtime.decide(parsed()), loop).result()
    )
    per_call = timed(n, lambda: asyncio.run(runtime.decide(parsed())))
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    print(f"\nin process, explicit model, {n} requests:")
    row("parse + decide, loop thread", persistent, None)
    row("parse + decide, asyncio.run", per_call, statistics.median(persistent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--mode", choices=["threads", "gevent", "both"], default="both")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="routeiq-kong-bench-"))
    try:
        bench_in_process(args.requests)
        for mode in ("threads", "gevent") if args.mode == "both" else (args.mode,):
            bench_server(mode, args.requests, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\nRequests:", json.dumps({k: json.loads(v.body)["model"] for k, v in CASES.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
