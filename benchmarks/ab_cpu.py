"""A/B of RouteIQ's CPU per request through the real server: two code trees, one run.

Server A runs a committed tree (``--base``, default ``HEAD``, exported with
``git archive``); server B runs the working tree, or, with ``--only FILE...``, that
same committed tree with only the named files taken from the working tree (so other
uncommitted work in the tree does not leak into the comparison), or with ``--tree-b
DIR`` the ``extproc`` package found in DIR (a prototype kept outside the tree). ``--env-a`` /
``--env-b`` add ``ROUTEIQ_*`` settings to one side (the same code with a different
setting). Each server sits behind its own copy of the shipped Envoy, in front of one
fixed-answer upstream, on the same ``--config``.

Per phase (the request mixes of ``added_latency.py``), both servers are warmed up,
then measured in rounds of ``--requests`` each at a fixed open-loop rate, in the order
A B B A, A B B A, ... so that a drift of the machine's load hits both sides alike.
Printed: CPU ms per request of each side (``/proc/<pid>/stat``, all threads), B/A (the
ratio of the two totals) with the smallest and largest per-round ratio, each side's
p50 latency through its Envoy (not "added": there is no direct baseline here), and
ext_proc messages per stream from Envoy's counters. ``--config-b`` gives server B
its own config (the same code under another setting). ``--a-floor`` makes server A the
bare floor (``floor_server.py``), so B/A is RouteIQ's CPU over the floor's measured in
interleaved rounds: steadier than two rows of ``added_latency.py``, whose phases run
minutes apart. Nothing is asserted.

    .venv/bin/python benchmarks/ab_cpu.py --phases explicit,short --rounds 4
    .venv/bin/python benchmarks/ab_cpu.py --only extproc/server/processor.py
    .venv/bin/python benchmarks/ab_cpu.py --a-floor --phases explicit --rounds 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stack import REPO, export_tree, process_cpu_s, proxy_config, start_upstream
from added_latency import Bodies, auto_long_factory, auto_repeated, auto_short, explicit
from open_loop import run_open_loop

from extproc.demo.processes import (
    ManagedProcess,
    free_port,
    start_envoy,
    start_routeiq,
    wait_for_port,
)

RATES = {"explicit": 200, "short": 100, "repeated": 100, "long": 50}


@dataclass
class Side:
    """One server under test, behind its own Envoy."""

    name: str
    server: ManagedProcess
    envoy: ManagedProcess
    port: int
    admin: int
    cpu_s: list[float] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    latencies: list[np.ndarray] = field(default_factory=list)

    def stats(self) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.admin}/stats?format=json&filter=ext_proc"
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.loads(r.read())
        return {s["name"].rsplit(".", 1)[-1]: int(s["value"]) for s in doc["stats"] if "value" in s}


def start_side(
    name: str, code: Path, env: dict[str, str], config: Path, upstream: int, work: Path
) -> Side:
    routeiq_port = free_port()
    server = start_routeiq(config, routeiq_port, work, env={"PYTHONPATH": str(code), **env})
    cfg, port, admin = proxy_config(upstream, routeiq_port)
    envoy = start_envoy(cfg, work, admin, concurrency=1)
    return Side(name, server, envoy, port, admin)


def start_floor(upstream: int, work: Path) -> Side:
    """The bare floor (``floor_server.py``) behind its own Envoy, as side A."""
    port = free_port()
    floor = Path(__file__).resolve().parent / "floor_server.py"
    server = ManagedProcess([sys.executable, str(floor), "--port", str(port)], work / "floor.log")
    wait_for_port(port, 30, server.proc)
    cfg, listener, admin = proxy_config(upstream, port)
    envoy = start_envoy(cfg, work, admin, concurrency=1)
    return Side("A", server, envoy, listener, admin)


def one_round(side: Side, bodies: Bodies, rate: int, n: int, salt: str) -> None:
    before = process_cpu_s(side.server.pid)
    load = asyncio.run(run_open_loop("127.0.0.1", side.port, bodies(n, salt), rate))
    side.cpu_s.append(process_cpu_s(side.server.pid) - before)
    side.sent.append(load.sent)
    side.latencies.append(load.latencies_ms)
    if load.failed:
        print(f"  {side.name}: {load.failed} failed, first: {load.first_error}")


def run_phase(a: Side, b: Side, phase: str, args: argparse.Namespace) -> str:
    bodies = auto_long_factory() if phase == "long" else BODIES[phase]
    rate = RATES[phase]
    for side in (a, b):
        one_round(side, bodies, rate, rate * 2, f"w{side.name}")  # warm-up, not counted
        side.cpu_s.clear()
        side.sent.clear()
        side.latencies.clear()
    msgs = {s.name: s.stats() for s in (a, b)}
    for i in range(args.rounds):
        for side in (a, b) if i % 2 == 0 else (b, a):
            one_round(side, bodies, rate, args.requests, f"{phase}{i}{side.name}")
    per = {s.name: sum(s.cpu_s) * 1000 / sum(s.sent) for s in (a, b)}
    ratios = [bc / ac for ac, bc in zip(a.cpu_s, b.cpu_s, strict=True) if ac > 0]
    counts = [_per_stream(msgs[s.name], s.stats()) for s in (a, b)]
    p50 = [float(np.percentile(np.concatenate(s.latencies), 50)) for s in (a, b)]
    return (
        f"{phase:<9}{rate:>6}{per['A']:>9.3f}{per['B']:>9.3f}{per['B'] / per['A']:>7.3f}"
        f"{min(ratios, default=0):>7.3f}{max(ratios, default=0):>7.3f}"
        f"{p50[0]:>8.2f}{p50[1]:>8.2f}   {counts[0]} / {counts[1]}"
    )


def _per_stream(before: dict[str, int], after: dict[str, int]) -> str:
    streams = after.get("streams_started", 0) - before.get("streams_started", 0)
    sent = after.get("stream_msgs_sent", 0) - before.get("stream_msgs_sent", 0)
    return f"{sent / streams:.2f}" if streams else "-"


BODIES: dict[str, Bodies] = {"explicit": explicit, "short": auto_short, "repeated": auto_repeated}


@contextlib.contextmanager
def sides(args: argparse.Namespace, upstream: int, work: Path) -> Iterator[tuple[Side, Side]]:
    code_a = export_tree(args.base, work / "a", [])
    code_b = export_tree(args.base, work / "b", args.only) if args.only else REPO
    if args.tree_b is not None:
        code_b = args.tree_b
    started: list[ManagedProcess] = []
    try:
        if args.a_floor:
            a = start_floor(upstream, work)
        else:
            a = start_side("A", code_a, _env(args.env_a), args.config, upstream, work)
        started += [a.server, a.envoy]
        b = start_side("B", code_b, _env(args.env_b), args.config_b or args.config, upstream, work)
        started += [b.server, b.envoy]
        yield a, b
    finally:
        for proc in started:
            proc.stop()


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(p.split("=", 1) for p in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="HEAD", help="git ref of server A's code")
    parser.add_argument("--only", nargs="*", default=[], help="files B takes from the tree")
    parser.add_argument(
        "--tree-b", type=Path, help="a directory holding server B's extproc package instead"
    )
    parser.add_argument("--env-a", nargs="*", default=[], help="ROUTEIQ_X=v for server A")
    parser.add_argument("--env-b", nargs="*", default=[], help="ROUTEIQ_X=v for server B")
    parser.add_argument("--phases", default="explicit,short,repeated")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side and phase")
    parser.add_argument("--requests", type=int, default=600, help="requests per round")
    parser.add_argument("--config", type=Path, default=REPO / "config" / "routeiq.yaml")
    parser.add_argument("--config-b", type=Path, help="server B's config (default: --config)")
    parser.add_argument(
        "--a-floor", action="store_true", help="server A is the bare floor (floor_server.py)"
    )
    args = parser.parse_args()
    args.config = args.config.resolve()
    args.config_b = args.config_b.resolve() if args.config_b else None
    # A plain SIGTERM would skip the ``finally`` blocks and leave the servers running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="routeiq-ab-") as tmp:
        work = Path(tmp)
        os.chdir(work)  # ``python -m`` puts the cwd first on sys.path: keep the tree off it
        upstream, upstream_port = start_upstream(work)
        try:
            with sides(args, upstream_port, work) as (a, b):
                b_code = args.tree_b or args.only or "working tree"
                a_code = "the floor (floor_server.py)" if args.a_floor else args.base
                print(f"A: {a_code} {args.env_a}; B: {b_code} {args.env_b}")
                print(f"load average at start {os.getloadavg()[0]:.2f}")
                print(
                    f"{'phase':<9}{'rate':>6}{'A ms':>9}{'B ms':>9}{'B/A':>7}{'min':>7}{'max':>7}"
                    f"{'A p50':>8}{'B p50':>8}"
                    "   ext_proc msgs per stream A / B"
                )
                for phase in args.phases.split(","):
                    print(run_phase(a, b, phase, args), flush=True)
        finally:
            upstream.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
