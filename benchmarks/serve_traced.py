"""``routeiq serve`` with memory accounting on: where a long-running server's memory goes.

Runs the same server the CLI runs (``extproc.server.app.serve`` on the environment's
Settings with ``--config`` and ``--port`` on top) and, every ``--every`` seconds,
appends to ``--report``: resident memory, glibc's heap counters (``mallinfo2``: bytes
in use by ``malloc`` and bytes it holds free, i.e. fragmentation), and, with
``--tracemalloc``, Python's traced total and the allocation sites that grew most since
the first report (``Snapshot.compare_to`` by traceback). Python-traced memory flat
while the heap or RSS grows means the growth is native (gRPC core, onnxruntime, the
allocator), not a Python object kept alive.

Diagnostic only: tracemalloc slows every allocation several fold and a snapshot stops
the event loop for a second or more. ``soak.py --report`` starts the server this way.
``extproc`` is imported as installed (or from ``PYTHONPATH``: another tree to compare).

    .venv/bin/python benchmarks/serve_traced.py --config config/routeiq.yaml \
        --port 50051 --report mem.txt [--every 60] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import sys
import time
import tracemalloc
from pathlib import Path
from typing import TextIO

from _stack import rss_mib

from extproc.config.settings import Settings
from extproc.server.app import serve

TOP = 12
FRAMES = 8
_IGNORE = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def heap_mib() -> tuple[float, float, float]:
    """glibc malloc: (in use, held free, mmapped) MiB over all arenas."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    mib = 1024 * 1024
    return info.uordblks / mib, info.fordblks / mib, info.hblkhd / mib


def _threads() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def write_report(out: TextIO, start: float, base: tracemalloc.Snapshot | None) -> None:
    used, free, mapped = heap_mib()
    head = (
        f"t={time.monotonic() - start:7.0f}s rss={rss_mib():7.1f} MiB heap in use={used:7.1f} "
        f"free={free:6.1f} mmapped={mapped:6.1f} threads={_threads()}"
    )
    if base is None or not tracemalloc.is_tracing():
        print(head, file=out, flush=True)
        return
    snap = tracemalloc.take_snapshot().filter_traces(_IGNORE)
    traced = sum(s.size for s in snap.statistics("filename")) / 1024 / 1024
    print(f"{head} traced={traced:7.2f} MiB", file=out)
    for stat in snap.compare_to(base, "traceback")[:TOP]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d} blocks", file=out)
        for frame in stat.traceback.format(limit=FRAMES, most_recent_first=True):
            print(f"      {frame.strip()}", file=out)
    out.flush()


async def _report(path: Path, every: float) -> None:
    start = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    with path.open("a") as out:
        while True:
            await asyncio.sleep(every)
            write_report(out, start, base)
            if base is None and tracemalloc.is_tracing():
                base = tracemalloc.take_snapshot().filter_traces(_IGNORE)


async def _main(settings: Settings, report: Path, every: float) -> int:
    task = asyncio.create_task(_report(report, every))
    try:
        return await serve(settings)
    finally:
        task.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between reports")
    parser.add_argument("--tracemalloc", action="store_true", help="trace Python allocations")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(FRAMES)
    env = Settings()
    settings = Settings(**{**env.model_dump(), "config_path": args.config, "grpc_port": args.port})
    logging.basicConfig(level=settings.log_level.upper())
    return asyncio.run(_main(settings, args.report, args.every))


if __name__ == "__main__":
    sys.exit(main())
