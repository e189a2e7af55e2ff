"""The long fuzz run: in process, through a real Envoy, and through Envoy in an outage.

Run from the repository root::

    .venv/bin/python benchmarks/fuzz.py [--count 20000] [--envoy-count 3000]
        [--outage-count 500] [--seed 17] [--asyncio-debug] [--gc-freeze]

Three phases, all on loopback, over the seeded cases of tests/security/fuzz_cases.py
(a case is reproduced with ``case_for(seed, index)``):

1. **in process**: ``--count`` cases through the ext_proc ``Processor`` over a Runtime
   built from config/routeiq.yaml, every answer checked (tests/security/fuzz_drive.py);
2. **Envoy**: ``--envoy-count`` further cases as raw HTTP/1.1 through the shipped
   fail-closed Envoy config to RouteIQ (this script in ``serve`` mode: the real
   server plus a heartbeat task on its event loop) and four demo backends that record
   the headers they receive; every recorded request is checked for spoofed headers;
3. **outage**: ``--outage-count`` cases through the fail-open config with RouteIQ
   down, where Envoy alone must strip every client ``x-routeiq-*`` header.

The heartbeat wakes every 5 ms on RouteIQ's loop; how late it wakes is how long the
loop was held (wall time: includes the process waiting for a CPU or for the GIL), and
the loop thread's CPU time between two wakes is the work it did in that stretch. It
prints, per phase and in total: inputs, unhandled exceptions, hangs, spoofed headers
reaching the upstream, and the maximum loop hold in milliseconds, with the longest
garbage-collector pause (a full collection holds the loop too). ``--gc-freeze`` moves
everything built at start-up out of the collector's reach (``gc.freeze()``), to measure
that mitigation; ``--asyncio-debug`` names the callbacks that ran longer than 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from extproc.config.settings import Settings  # noqa: E402
from extproc.demo.processes import ManagedProcess, free_port, wait_for_port  # noqa: E402
from extproc.runtime import Runtime  # noqa: E402
from extproc.server.app import serve  # noqa: E402
from tests.fixtures.stack import Backends, envoy_for, start_backend  # noqa: E402
from tests.security.fuzz_cases import Case, case_for  # noqa: E402
from tests.security.fuzz_drive import Driver, run_cases  # noqa: E402
from tests.security.fuzz_envoy import send, upstream_problems  # noqa: E402

CONFIG = REPO / "config" / "routeiq.yaml"
CLUSTERS = {
    "demo_eco": "eco",
    "demo_premium": "premium",
    "demo_local": "local",
    "litellm": "litellm",
}
DEFAULT_CLUSTER = "demo_eco"
BEAT_S = 0.005
HOLD_LIMIT_MS = 50.0
POLL_EVERY = 40  # the demo backend keeps its last 50 requests


# -- RouteIQ with a heartbeat (the ``serve`` mode, run in a child process) -----------------


@dataclass
class Heartbeat:
    """Lateness of a periodic wake-up on the event loop, and the loop's CPU between wakes."""

    beats: int = 0
    max_late_ms: float = 0.0
    max_cpu_ms: float = 0.0
    over_limit: int = 0
    # The longest holds: (late ms, loop CPU ms, time.monotonic() at the wake, which is
    # the same clock in every process of the machine).
    worst: list[tuple[float, float, float]] = field(default_factory=list)

    async def run(self, freeze: bool) -> None:
        loop = asyncio.get_running_loop()
        if freeze:  # first wake: serve() has built the Runtime by now
            gc.freeze()
        while True:
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(BEAT_S)
            late_ms = (loop.time() - before - BEAT_S) * 1000
            cpu_ms = (time.thread_time() - cpu) * 1000
            self.beats += 1
            self.max_late_ms = max(self.max_late_ms, late_ms)
            self.max_cpu_ms = max(self.max_cpu_ms, cpu_ms)
            if late_ms > HOLD_LIMIT_MS:
                self.over_limit += 1
            if late_ms > 10:
                self.worst = sorted([*self.worst, (late_ms, cpu_ms, time.monotonic())])[-10:]


@dataclass
class GcPauses:
    """The longest garbage-collector pause (wall ms) and its generation: a full
    collection walks every live object, and holds the loop while it does."""

    max_ms: float = 0.0
    generation: int = -1
    over_10ms: int = 0
    _started: float = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._started) * 1000
        self.over_10ms += ms > 10
        if ms > self.max_ms:
            self.max_ms, self.generation = ms, info["generation"]

    def summary(self) -> str:
        return (
            f"max GC pause {self.max_ms:.1f} ms (gen {self.generation}), "
            f"{self.over_10ms} over 10 ms"
        )


class _SlowCallbacks(logging.Handler):
    """asyncio's debug-mode warnings ("Executing <Handle ...> took 0.120 seconds")."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "took" in record.getMessage() and len(self.lines) < 50:
            self.lines.append(record.getMessage()[:300])


async def _serve(settings: Settings, report: Path, debug: bool, freeze: bool) -> int:
    beat, slow, pauses = Heartbeat(), _SlowCallbacks(), GcPauses()
    pauses.install()
    if debug:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        loop.slow_callback_duration = HOLD_LIMIT_MS / 1000
        logging.getLogger("asyncio").addHandler(slow)
    task = asyncio.create_task(beat.run(freeze))
    try:
        return await serve(settings)
    finally:
        task.cancel()
        summary = {**beat.__dict__, "slow_callbacks": slow.lines, "gc": pauses.summary()}
        report.write_text(json.dumps(summary))


def serve_main(args: argparse.Namespace) -> int:
    settings = Settings(
        config_path=Path(args.config),
        grpc_port=args.port,
        admin_port=args.admin_port,
        grace_period_s=1.0,
    )
    return asyncio.run(_serve(settings, Path(args.report), args.asyncio_debug, args.gc_freeze))


# -- the phases --------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    inputs: int = 0
    exceptions: int = 0
    hangs: int = 0
    spoofed: int = 0
    max_hold_ms: float = 0.0
    hold_note: str = ""
    statuses: Counter[int] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    sent: list[tuple[float, float, str]] = field(default_factory=list)  # start, end, case
    seconds: float = 0.0
    violations: int = 0


async def _in_process(count: int, seed: int, freeze: bool) -> PhaseResult:
    pauses = GcPauses()
    pauses.install()
    runtime = Runtime.create(Settings(config_path=CONFIG, decision_log="off"))
    if freeze:
        gc.freeze()
    try:
        tally = await run_cases(Driver(runtime), (case_for(seed, i) for i in range(count)))
    finally:
        await runtime.close()
        gc.callbacks.clear()
    spoofed = sum("spoofed" in v or "not stripped" in v for v in tally.violations)
    result = PhaseResult("in process", tally.cases, tally.exceptions, 0, spoofed)
    result.violations = len(tally.violations)
    result.max_hold_ms = tally.max_cpu_s * 1000
    result.hold_note = (
        f"loop CPU of one input, {tally.most_cpu}; wall {tally.max_s * 1000:.1f} ms; "
        + pauses.summary()
    )
    result.examples = tally.violations[:10]
    return result


def _start_routeiq(workdir: Path, cli: argparse.Namespace) -> tuple[ManagedProcess, int, Path]:
    port, report = free_port(), workdir / "heartbeat.json"
    args = [sys.executable, __file__, "serve", "--config", str(CONFIG), "--port", str(port)]
    args += ["--admin-port", str(free_port()), "--report", str(report)]
    args += ["--asyncio-debug"] if cli.asyncio_debug else []
    args += ["--gc-freeze"] if cli.gc_freeze else []
    proc = ManagedProcess(args, workdir / "routeiq.log")
    wait_for_port(port, 60, proc.proc)
    return proc, port, report


def _poll(backends: Backends, cases: dict[int, Case], result: PhaseResult, seen: set[str]) -> None:
    for cluster in backends.ports:
        for entry in backends.received(cluster):
            key = json.dumps(entry["headers"], sort_keys=True)
            if key in seen:
                continue
            seen.add(key)
            problems = upstream_problems(entry, cluster, cases, DEFAULT_CLUSTER)
            if problems:
                result.spoofed += 1
                if len(result.examples) < 10:
                    fuzz_id = entry["headers"].get("x-fuzz-id", "?")
                    result.examples.append(f"case {fuzz_id} at {cluster}: {problems}")


def _send_all(
    port: int, backends: Backends, seed: int, indexes: range, result: PhaseResult
) -> None:
    cases: dict[int, Case] = {}
    seen: set[str] = set()
    for n, index in enumerate(indexes, 1):
        case = cases[index] = case_for(seed, index)
        started = time.monotonic()
        reply = send(port, case)
        result.sent.append((started, time.monotonic(), case.label))
        result.inputs += 1
        result.statuses[reply.status] += 1
        if reply.status >= 500 and len(result.examples) < 10:
            result.examples.append(f"{case.label}: {reply.status} {reply.code}")
        if reply.status == 0 or reply.code == "routing_unavailable":
            result.hangs += 1
            if len(result.examples) < 10:
                result.examples.append(f"{case.label}: no answer ({reply.code})")
        if n % POLL_EVERY == 0:
            _poll(backends, cases, result, seen)
    _poll(backends, cases, result, seen)


def _envoy_phase(workdir: Path, backends: Backends, args: argparse.Namespace) -> PhaseResult:
    result = PhaseResult("envoy")
    routeiq, port, report = _start_routeiq(workdir, args)
    stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
    try:
        start = args.count
        _send_all(stack.port, backends, args.seed, range(start, start + args.envoy_count), result)
    finally:
        stack.envoy.stop()
        routeiq.stop()
    log = routeiq.output()
    result.exceptions = log.count("Traceback") + log.count("ext_proc phase")
    beat: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    result.max_hold_ms = float(beat.get("max_late_ms", -1))
    result.hold_note = (
        f"heartbeat wall lateness; loop CPU max {beat.get('max_cpu_ms', -1):.1f} ms; "
        f"{beat.get('over_limit', '?')} holds over {HOLD_LIMIT_MS:.0f} ms in "
        f"{beat.get('beats', 0)} beats; {beat.get('gc', '')}"
    )
    result.examples += _attribute(beat.get("worst", [])[-5:], result.sent)
    result.examples += beat.get("slow_callbacks", [])[:5]
    return result


def _attribute(worst: list[list[float]], sent: list[tuple[float, float, str]]) -> list[str]:
    """Name the requests in flight during each of the longest holds."""
    lines = []
    for late_ms, cpu_ms, at in reversed(worst):
        begin = at - late_ms / 1000 - BEAT_S
        during = [label for start, end, label in sent if start <= at and end >= begin]
        lines.append(
            f"hold {late_ms:.0f} ms (loop CPU {cpu_ms:.0f} ms) during: {'; '.join(during)[:300]}"
        )
    return lines


def _outage_phase(workdir: Path, backends: Backends, args: argparse.Namespace) -> PhaseResult:
    result = PhaseResult("outage (fail-open, RouteIQ down)")
    dead = free_port()  # nothing listens there
    template = REPO / "envoy" / "routeiq-fail-open.yaml"
    stack = envoy_for(template, workdir, dead, backends, failure_mode_allow=True)
    try:
        start = args.count + args.envoy_count
        _send_all(stack.port, backends, args.seed, range(start, start + args.outage_count), result)
    finally:
        stack.envoy.stop()
    result.hangs = 0  # every request is expected to go undecided here
    return result


# -- main ------------------------------------------------------------------------------------


def _print(result: PhaseResult) -> None:
    print(f"\n== {result.name}" + (f" ({result.seconds:.0f} s)" if result.seconds else ""))
    print(f"  inputs:                            {result.inputs}")
    print(f"  unhandled exceptions:              {result.exceptions}")
    print(f"  hangs:                             {result.hangs}")
    print(f"  spoofed headers reaching upstream: {result.spoofed}")
    if result.violations:
        print(f"  other property violations:         {result.violations}")
    if result.max_hold_ms:
        print(f"  max loop hold ms:                  {result.max_hold_ms:.1f} ({result.hold_note})")
    if result.statuses:
        print(f"  statuses: {dict(sorted(result.statuses.items()))}")
    for line in result.examples:
        print(f"    {line[:400]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode")
    child = sub.add_parser("serve", help="internal: RouteIQ with a heartbeat on its loop")
    child.add_argument("--config", required=True)
    child.add_argument("--port", type=int, required=True)
    child.add_argument("--admin-port", type=int, required=True)
    child.add_argument("--report", required=True)
    child.add_argument("--asyncio-debug", action="store_true")
    child.add_argument("--gc-freeze", action="store_true")
    parser.add_argument("--count", type=int, default=20_000, help="in-process inputs")
    parser.add_argument("--envoy-count", type=int, default=3_000, help="inputs through Envoy")
    parser.add_argument("--outage-count", type=int, default=500, help="inputs, RouteIQ down")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--asyncio-debug", action="store_true", help="name slow callbacks")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() once RouteIQ is built (a mitigation)"
    )
    args = parser.parse_args()
    if args.mode == "serve":
        raise SystemExit(serve_main(args))
    started = time.monotonic()
    results = [asyncio.run(_in_process(args.count, args.seed, args.gc_freeze))]
    results[0].seconds = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="routeiq-fuzz-") as tmp:
        workdir = Path(tmp)
        backends = Backends(ports={})
        try:
            for cluster, name in CLUSTERS.items():
                proc, port = start_backend(name, workdir, stream_delay=0)
                backends.procs.append(proc)
                backends.ports[cluster] = port
            for count, phase in (
                (args.envoy_count, _envoy_phase),
                (args.outage_count, _outage_phase),
            ):
                if count:
                    phase_started = time.monotonic()
                    results.append(phase(workdir, backends, args))
                    results[-1].seconds = time.monotonic() - phase_started
        finally:
            for p in backends.procs:
                p.stop()
    for result in results:
        _print(result)
    total = PhaseResult("total")
    for r in results:
        total.inputs += r.inputs
        total.exceptions += r.exceptions
        total.hangs += r.hangs
        total.spoofed += r.spoofed
        total.max_hold_ms = max(total.max_hold_ms, r.max_hold_ms)
    _print(total)
    print(f"\nseed {args.seed}; {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
