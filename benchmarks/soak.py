"""Soak: mixed traffic at a fixed rate for minutes; latency, CPU and memory per minute.

The same stack as ``added_latency.py`` (an Envoy answering a fixed completion as the
upstream, the shipped Envoy config, ``routeiq serve`` on ``--config``), one open-loop
load (``open_loop.py``) kept up for ``--minutes``: half explicit-model requests, a third
``auto`` with a new short prompt each, the rest one repeated ``auto`` prompt, shuffled
once with a fixed seed. Before it, Envoy straight to the upstream for ``--direct``
seconds at the same rate: the baseline the per-minute figures are read against.

Printed per minute: requests, failures, p50/p90/p99/max latency (from each request's due
time), RouteIQ's CPU ms per request and its resident memory at the minute's end, so a
leak, a creeping queue or a periodic stall shows as a trend. Nothing is asserted.

To find where memory goes: ``--mix explicit`` or ``--mix auto`` splits the traffic,
``--env NAME=VALUE`` sets the server's environment (``MALLOC_ARENA_MAX=2``...), and
``--report FILE`` runs the server through ``serve_traced.py``, which appends its heap
counters (and with ``--tracemalloc`` the Python allocation sites that grew) to FILE
every minute, and ``--envoy-runtime NAME=VALUE`` sets an Envoy runtime flag on the
proxy in front of RouteIQ (``envoy.reloadable_features.ext_proc_graceful_grpc_close``).

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import REPO, process_cpu_s, proxy_config, rss_mib, start_upstream
from added_latency import auto_repeated, auto_short, explicit, process, proxy
from open_loop import LoadResult, run_open_loop

from extproc.demo.processes import (
    ManagedProcess,
    free_port,
    start_envoy,
    start_listening,
    start_routeiq,
)

MIXES = ("mixed", "explicit", "auto")


def mixed(n: int, salt: str, seed: int) -> list[bytes]:
    """``n`` requests: 50% explicit, 35% ``auto`` new text, 15% ``auto`` repeated."""
    n_auto, n_same = int(n * 0.35), int(n * 0.15)
    bodies = explicit(n - n_auto - n_same, salt) + auto_short(n_auto, salt)
    bodies += auto_repeated(n_same, salt)
    random.Random(seed).shuffle(bodies)
    return bodies


def bodies_for(mix: str, n: int, salt: str, seed: int) -> list[bytes]:
    """``n`` requests of ``mix``: ``mixed``, ``explicit`` only, or ``auto`` new text only."""
    if mix == "explicit":
        return explicit(n, salt)
    if mix == "auto":
        return auto_short(n, salt)
    return mixed(n, salt, seed)


def start_server(args: argparse.Namespace, port: int, work: Path) -> ManagedProcess:
    """``routeiq serve`` on ``--config``; through ``serve_traced.py`` with ``--report``."""
    env = dict(kv.split("=", 1) for kv in args.env)
    if args.report is None:
        return start_routeiq(args.config, port, work, env)
    env.setdefault("ROUTEIQ_ADMIN_PORT", str(free_port()))
    command = [sys.executable, str(Path(__file__).with_name("serve_traced.py"))]
    command += ["--config", str(args.config), "--port", str(port)]
    command += ["--report", str(args.report.resolve()), "--every", "60"]
    if args.tracemalloc:
        command.append("--tracemalloc")
    return start_listening(command, port, work, env)


@contextlib.contextmanager
def routeiq_proxy(
    work: Path, upstream_port: int, routeiq_port: int, runtime: list[str]
) -> Iterator[int]:
    """The shipped Envoy through RouteIQ, with ``runtime`` flags (``NAME=VALUE``) in a
    static runtime layer; its listener port."""
    if not runtime:
        with proxy(work, upstream_port, routeiq_port) as port:
            yield port
        return
    cfg, port, admin = proxy_config(upstream_port, routeiq_port)
    flags = {name: value.lower() == "true" for name, value in (f.split("=", 1) for f in runtime)}
    cfg["layered_runtime"] = {"layers": [{"name": "soak", "static_layer": flags}]}
    envoy = start_envoy(cfg, work, admin, concurrency=1)
    try:
        yield port
    finally:
        envoy.stop()


def line(name: str, load: LoadResult, cpu_ms: float | None, rss: float | None) -> str:
    cpu = "-" if cpu_ms is None else f"{cpu_ms:.3f}"
    mem = "-" if rss is None else f"{rss:.1f}"
    worst = float(load.latencies_ms.max()) if load.latencies_ms.size else 0.0
    return (
        f"{name:<12} {load.sent:>6} {load.failed:>5} {load.pct(50):>7.2f} {load.pct(90):>7.2f} "
        f"{load.pct(99):>7.2f} {worst:>8.2f} {cpu:>7} {mem:>8}"
    )


def run(args: argparse.Namespace, work: Path) -> int:
    traffic = {
        "mixed": "mixed traffic (50% explicit, 35% auto new text, 15% auto repeated)",
        "explicit": "explicit model only",
        "auto": "auto with a new short text each",
    }[args.mix]
    env = f", server env {' '.join(args.env)}" if args.env else ""
    env += f", Envoy runtime {' '.join(args.envoy_runtime)}" if args.envoy_runtime else ""
    print(
        f"open loop at {args.rate}/s, {traffic}{env}, {os.cpu_count()} cores, load average at "
        f"start {os.getloadavg()[0]:.2f}; latencies in ms, CPU ms per request, RSS MiB"
    )
    print(f"{'minute':<12} {'sent':>6} {'fail':>5} {'p50':>7} {'p90':>7} {'p99':>7} "
          f"{'max':>8} {'CPU ms':>7} {'RSS':>8}")  # fmt: skip
    failed = 0
    upstream, up_port = start_upstream(work)
    with process(upstream):
        with proxy(work, up_port, None) as port:
            n = int(args.rate * args.direct)
            load = asyncio.run(run_open_loop("127.0.0.1", port, explicit(n, "d"), args.rate))
            print(line("direct", load, None, None), flush=True)
        routeiq_port = free_port()
        routeiq = start_server(args, routeiq_port, work)
        with (
            process(routeiq),
            routeiq_proxy(work, up_port, routeiq_port, args.envoy_runtime) as port,
        ):
            for minute in range(1, args.minutes + 1):
                bodies = bodies_for(args.mix, args.rate * 60, f"m{minute}-", seed=minute)
                before = process_cpu_s(routeiq.pid)
                load = asyncio.run(run_open_loop("127.0.0.1", port, bodies, args.rate))
                cpu = (process_cpu_s(routeiq.pid) - before) * 1000 / load.sent
                failed += load.failed
                print(line(f"{minute}", load, cpu, rss_mib(routeiq.pid)), flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100, help="requests per second")
    parser.add_argument("--direct", type=float, default=30, help="seconds of the baseline")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "routeiq.yaml")
    parser.add_argument("--mix", choices=MIXES, default="mixed", help="traffic kind")
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="server environment"
    )
    parser.add_argument(
        "--envoy-runtime",
        action="append",
        default=[],
        metavar="NAME=true|false",
        help="Envoy runtime flag on the proxy in front of RouteIQ",
    )
    parser.add_argument("--report", type=Path, help="server memory report file (serve_traced)")
    parser.add_argument("--tracemalloc", action="store_true", help="with --report: trace Python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="routeiq-soak-") as work:
        return run(args, Path(work))


if __name__ == "__main__":
    sys.exit(main())
