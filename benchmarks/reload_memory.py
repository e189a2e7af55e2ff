"""Resident memory across config reloads, with and without returning the free heap.

Each reload builds a whole snapshot beside the serving one (ONNX session, policy
engine, token tables) and frees the old one. One process per side runs ``--reloads``
reloads of ``config/routeiq.yaml`` the way the watcher does them (build, swap, close the
old one) and prints RSS after each; side B also calls ``extproc.heap.release_free_heap``
after each close, as the watcher now does when it retires a snapshot.

    .venv/bin/python benchmarks/reload_memory.py [--reloads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys

from _stack import REPO, rss_mib


async def side(reloads: int, trim: bool) -> list[float]:
    from extproc.config.settings import Settings
    from extproc.config.snapshot import build_snapshot
    from extproc.heap import release_free_heap
    from extproc.runtime import Runtime

    config = REPO / "config" / "routeiq.yaml"
    runtime = Runtime.create(Settings(config_path=config, decision_log="off"))
    gc.collect()
    gc.freeze()
    out = [rss_mib()]
    try:
        for _ in range(reloads):
            old = runtime.snapshot
            runtime.swap(build_snapshot(config))
            old.close()
            del old
            if trim:
                release_free_heap()
            out.append(rss_mib())
    finally:
        await runtime.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reloads", type=int, default=8)
    parser.add_argument("--side", choices=("plain", "trim"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(asyncio.run(side(args.reloads, args.side == "trim"))))
        return 0
    runs = {}
    for name in ("plain", "trim"):
        done = subprocess.run(
            [sys.executable, __file__, "--reloads", str(args.reloads), "--side", name],
            capture_output=True, text=True, check=True, cwd=REPO,
        )  # fmt: skip
        runs[name] = json.loads(done.stdout)
    print("RSS MiB after each reload (0: before the first)")
    print(f"{'reload':>6}{'plain':>10}{'trim':>10}{'trim/plain':>12}")
    for i, (a, b) in enumerate(zip(runs["plain"], runs["trim"], strict=True)):
        print(f"{i:>6}{a:>10.1f}{b:>10.1f}{b / a:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
