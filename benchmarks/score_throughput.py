"""``routeiq score`` throughput on MMLU-length prompts: batched vs one request at a time.

    .venv/bin/python benchmarks/score_throughput.py [--prompts 2000] [--baseline 300]
        [--data ../shared/data/routing/routellm_mmlu_train] [--config FILE]

Prompts: RouteLLM's MMLU responses (the ``prompt`` column: question, options and
"Answer:"), read from ``--data`` (a directory of CSVs or one file in any format
``extproc.routing.labelled`` reads), the first ``--prompts`` in file order. Three
measurements in the same run, same router (the config's, default the shipped one):

1. baseline: ``Router.classify`` one request at a time on ``--baseline`` prompts spread
   evenly over the set (the serving path, as ``routeiq score`` worked before batching);
2. batched: ``extproc.routing.scoring.classify_many`` (sorted by length, chunks of 8
   through ``Router.classify_batch``, ``spec.routing.threads`` single-threaded workers)
   on all of them;
3. the whole command: ``routeiq score --input FILE --output FILE`` in a subprocess
   (Python start, imports, router build, JSON in and out included).

Prints prompts/s for each and the ratio batched / one-at-a-time. CPU time is printed too:
on shared cores the wall clock depends on what else runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from extproc.routing.labelled import load_labelled
from extproc.routing.scoring import classify_many, load_router, request_of, routing_source

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "routing" / "routellm_mmlu_train"


def _prompts(data: Path, n: int) -> list[str]:
    files = sorted(data.glob("*.csv")) if data.is_dir() else [data]
    rows = load_labelled(files).rows
    return [r.prompt for r in rows[:n]]


def _timed(label: str, n: int, fn: Callable[[], object]) -> float:
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, used = time.perf_counter() - start, time.process_time() - cpu
    rate = n / wall
    print(
        f"{label:<34} {n:>6} prompts  {wall:7.2f} s  {rate:7.1f} prompts/s  "
        f"CPU {1000 * used / n:6.2f} ms/prompt"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--baseline", type=int, default=300)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args()

    prompts = _prompts(args.data, args.prompts)
    requests = [request_of({"prompt": p}) for p in prompts]
    source = routing_source(args.config)
    router = load_router(source)  # the serving router: spec.routing.threads intra-op threads
    batch_router = load_router(source, batch_workers=True)  # one thread per worker
    chars = sum(len(p) for p in prompts) / len(prompts)
    print(f"{len(prompts)} prompts from {args.data.name}, mean {chars:.0f} characters")

    base = requests[:: max(1, len(requests) // args.baseline)][: args.baseline]  # spread out
    one = _timed(
        "one at a time (Router.classify)", len(base), lambda: [router.classify(r) for r in base]
    )
    batched = _timed(
        f"batched, {source.workers} workers",
        len(requests),
        lambda: classify_many(batch_router, requests, workers=source.workers),
    )

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
        ]
        if args.config is not None:
            cmd += ["--config", str(args.config)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
        lines = len(out.read_text().splitlines())
    print(
        f"{'routeiq score (whole command)':<34} {lines:>6} prompts  {wall:7.2f} s  "
        f"{lines / wall:7.1f} prompts/s"
    )
    print(f"batched / one at a time: {batched / one:.2f}x")


if __name__ == "__main__":
    main()
