"""``routeiq score`` throughput on MMLU-length prompts against one request at a time.

    .venv/bin/python benchmarks/score_throughput.py [--prompts 2000] [--baseline 300]
        [--data ../shared/data/routing/routellm_mmlu_train] [--config FILE] [--chunks 1 32]

Prompts: RouteLLM's MMLU responses (the ``prompt`` column: question, options and
"Answer:"), read from ``--data`` (a directory of CSVs or one file in any format
``extproc.routing.labelled`` reads), the first ``--prompts`` in file order. Measured in
the same run, same config (default the shipped one):

1. baseline: ``Router.classify`` one request at a time on ``--baseline`` prompts spread
   evenly over the set (the serving path; ``routeiq score`` before this change);
2. ``extproc.routing.scoring.classify_many`` on all prompts with one single-threaded
   worker per CPU (what ``routeiq score`` does), once per ``--chunks`` size (requests per
   ``Router.classify_batch`` call; 1 is what ``routeiq score`` uses), with how many of the
   baseline prompts got another category or tier than the serving path (int8 dynamic
   quantisation scales a batch as a whole);
3. the whole command: ``routeiq score --input FILE --output FILE`` in a subprocess
   (Python start, imports, router build, JSON in and out included).

Prints prompts/s, CPU ms per prompt (on shared cores the wall clock depends on what else
runs) and each ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from extproc.routing.labelled import load_labelled
from extproc.routing.scoring import (
    RoutingSource,
    classify_many,
    default_workers,
    load_router,
    request_of,
    routing_source,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "routing" / "routellm_mmlu_train"
T = TypeVar("T")


def _prompts(data: Path, n: int) -> list[str]:
    files = sorted(data.glob("*.csv")) if data.is_dir() else [data]
    return [r.prompt for r in load_labelled(files).rows[:n]]


def _timed(label: str, n: int, fn: Callable[[], T]) -> tuple[float, T]:
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"{label:<36} {n:>6} prompts {wall:7.2f} s {n / wall:7.1f} prompts/s  "
        f"CPU {1000 * used / n:6.2f} ms/prompt",
        end="",
    )
    return n / wall, result


def _whole_command(prompts: list[str], config: Path | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text(
            "".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(prompts))
        )
        cmd = [
            sys.executable,
            "-m",
            "extproc.routing.cli",
            "score",
            "--input",
            str(src),
            "--output",
            str(out),
            *(["--config", str(config)] if config else []),
        ]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
        lines = len(out.read_text().splitlines())
    print(
        f"{'routeiq score (whole command)':<36} {lines:>6} prompts {wall:7.2f} s "
        f"{lines / wall:7.1f} prompts/s",
        end="",
    )
    return lines / wall


def _fixed_bars(source: RoutingSource) -> RoutingSource:
    """``source`` with reference bars: with traffic bars the serving path's tiers would
    follow its own window after ``warmup`` prompts, and the comparison below is about
    batching effects on the embedding, not about calibration."""
    cq = source.spec.cost_quality
    if cq is None:
        return source
    fixed = cq.model_copy(
        update={"calibration": cq.calibration.model_copy(update={"source": "reference"})}
    )
    return replace(source, spec=source.spec.model_copy(update={"cost_quality": fixed}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=300)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--chunks", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()

    prompts = _prompts(args.data, args.prompts)
    requests = [request_of({"prompt": p}) for p in prompts]
    source = _fixed_bars(routing_source(args.config))
    router = load_router(source)  # the serving router: spec.routing.threads intra-op threads
    workers_router = load_router(source, batch_workers=True)  # one thread per worker
    workers = default_workers()
    chars = sum(len(p) for p in prompts) / len(prompts)
    print(
        f"{len(prompts)} prompts from {args.data.name}, mean {chars:.0f} characters, "
        f"config {source.origin}"
    )

    step = max(1, len(requests) // args.baseline)
    picked = list(range(0, len(requests), step))[: args.baseline]
    one, serving = _timed(
        "one at a time (Router.classify)",
        len(picked),
        lambda: [router.classify(requests[i]) for i in picked],
    )
    print()
    for chunk in args.chunks:
        rate, results = _timed(
            f"{workers} workers, {chunk} per batch call",
            len(requests),
            lambda chunk=chunk: classify_many(  # type: ignore[misc]
                workers_router, requests, workers=workers, chunk=chunk
            ),
        )
        moved = sum(
            (results[i].category, results[i].tier) != (s.category, s.tier)
            for i, s in zip(picked, serving, strict=True)
        )
        print(f"  {rate / one:.2f}x; {moved}/{len(picked)} differ from the serving path")
    whole = _whole_command(prompts, args.config)
    print(f"  {whole / one:.2f}x")


if __name__ == "__main__":
    main()
