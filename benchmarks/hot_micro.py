"""Micro A/B of hot-path pieces: a committed tree against the working tree, one run.

Each side runs in its own interpreter with ``PYTHONPATH`` on its code (A: ``--base``,
default ``HEAD``, exported with ``git archive``; B: the working tree, or with ``--only
FILE...`` the base with only those files from the working tree), alternately,
``--repeats`` times; the smallest time of each side is kept (the least disturbed by
other work on the machine) and B/A printed. What is timed, per operation:

- ``explicit body reply``: the request-body answer of an explicit-model request
  (route header and two decision headers, client headers removed);
- ``auto body reply``: the same for ``auto`` (seven headers and a rewritten body);
- ``auto response headers``: the response-headers answer with seven decision headers;
- ``policy answer to result``: a Rego decision document turned into a ``PolicyResult``;
- ``offload hop``: one trivial job through the analysis pool and back, CPU of the
  event-loop thread and of the whole process (both threads);
- ``request in process``: a whole request through ``Processor.handle`` (request
  headers, body, response headers; protobuf parse and serialise included) on the
  shipped config with a ``Runtime`` as ``routeiq serve`` builds it (decision log off):
  an explicit model, and ``auto`` on one repeated prompt (the embedding cached).
  Event-loop thread CPU per request; the server pays a multiple of it (its code runs
  with caches cold between gRPC and Envoy), but the ratio is what to compare.

    .venv/bin/python benchmarks/hot_micro.py [--base HEAD] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

AUTO_HEADERS = [
    ("x-routeiq-cluster", "demo_premium"),
    ("x-routeiq-backend", "premium"),
    ("x-routeiq-decision-id", "5d790258a3ab5bc0"),
    ("x-routeiq-tier", "premium"),
    ("x-routeiq-needed-tier", "standard"),
    ("x-routeiq-category", "coding"),
    ("x-routeiq-quality", "need=0.191; eco<0.162; premium>=0.220; rule=standard"),
]
BODY = json.dumps(
    {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a palindrome check."}]}
).encode()


def _per_op_us(fn: Callable[[], object], number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6


def _builders() -> dict[str, float]:
    from extproc.policy.judge import Judge
    from extproc.server import mutations as m

    judge = Judge("embedded", deny_status=403, dry_run=False, fail_open=False)
    decision = {"allowed": True, "rule_ids": [], "headers": {}}

    explicit = AUTO_HEADERS[:3]
    mode = m.processing_mode(request_body=m.NONE, response_headers=m.SEND)
    return {
        "explicit body reply": _per_op_us(lambda: m.route_request_body(explicit, (), None)),
        "auto body reply": _per_op_us(lambda: m.route_request_body(AUTO_HEADERS, (), BODY)),
        "auto response headers": _per_op_us(
            lambda: m.continue_response_headers(AUTO_HEADERS[1:], mode)
        ),
        "policy answer to result": _per_op_us(lambda: judge.answered(decision, 0.0)),
    }


async def _hop(jobs: int) -> tuple[float, float]:
    from extproc.pipeline.offload import ThreadOffload

    pool = ThreadOffload(threads=1, timeout_s=1.0, max_pending=8)
    try:
        for _ in range(200):
            await pool.run(int)
        thread, process = time.thread_time(), time.process_time()
        for _ in range(jobs):
            await pool.run(int)
        return (
            (time.thread_time() - thread) / jobs * 1e6,
            (time.process_time() - process) / jobs * 1e6,
        )
    finally:
        pool.close()


def _request_messages(model: str, text: str) -> list[bytes]:
    from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
    from envoy.service.ext_proc.v3.external_processor_pb2 import (
        HttpBody,
        HttpHeaders,
        ProcessingRequest,
    )

    def headers(pairs: list[tuple[str, str]]) -> HttpHeaders:
        values = [HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs]
        return HttpHeaders(headers=HeaderMap(headers=values))

    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})
    request = [(":method", "POST"), (":path", "/v1/chat/completions"), (":authority", "h")]
    request += [("content-type", "application/json"), ("content-length", str(len(body)))]
    response = [(":status", "200"), ("content-type", "application/json")]
    return [
        ProcessingRequest(request_headers=headers(request)).SerializeToString(),
        ProcessingRequest(
            request_body=HttpBody(body=body.encode(), end_of_stream=True)
        ).SerializeToString(),
        ProcessingRequest(response_headers=headers(response)).SerializeToString(),
    ]


async def _requests(requests: int) -> dict[str, float]:
    from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest

    from extproc.config.settings import Settings
    from extproc.runtime import Runtime
    from extproc.server.processor import Processor

    config = REPO / "config" / "routeiq.yaml"
    runtime = Runtime.create(Settings(config_path=config, decision_log="off"))
    out: dict[str, float] = {}
    try:
        for name, model, text in (
            ("explicit request in process", "gpt-4o-mini", "Say hello."),
            ("auto repeated in process", "auto", "Write a palindrome check in Python."),
        ):
            messages = _request_messages(model, text)
            for phase in ("warm", "measure"):
                started = time.thread_time()
                for _ in range(300 if phase == "warm" else requests):
                    processor = Processor(runtime)
                    for message in messages:
                        answer = await processor.handle(ProcessingRequest.FromString(message))
                        answer.SerializeToString()
            out[name] = (time.thread_time() - started) / requests * 1e6
    finally:
        await runtime.close()
    return out


def side() -> None:
    """One side's figures as JSON on stdout (run with PYTHONPATH on its code)."""
    out = _builders()
    loop_us, process_us = asyncio.run(_hop(5000))
    out["offload hop, loop thread"] = loop_us
    out["offload hop, process"] = process_us
    out.update(asyncio.run(_requests(3000)))
    print(json.dumps(out))


def _run_side(code: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(
        [sys.executable, __file__, "--side"],
        env=env,
        cwd=tempfile.gettempdir(),  # keep the working tree off ``sys.path``
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="HEAD", help="git ref of side A")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--only", nargs="*", default=[], help="B is --base with only these files from the tree"
    )
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side()
        return 0
    # Imported here: a side process must import ``extproc`` only from its own tree.
    from _stack import export_tree

    with tempfile.TemporaryDirectory(prefix="routeiq-micro-") as tmp:
        code_a = export_tree(args.base, Path(tmp) / "a", [])
        code_b = export_tree(args.base, Path(tmp) / "b", args.only) if args.only else REPO
        runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        for _ in range(args.repeats):
            runs["A"].append(_run_side(code_a))
            runs["B"].append(_run_side(code_b))
    what = f"{args.base} + {' '.join(args.only)}" if args.only else "working tree"
    print(f"A: {args.base}; B: {what}; best of {args.repeats}; microseconds per operation")
    print(f"{'operation':<28}{'A us':>9}{'B us':>9}{'B/A':>7}")
    for name in runs["A"][0]:
        a = min(r[name] for r in runs["A"])
        b = min(r[name] for r in runs["B"])
        print(f"{name:<28}{a:>9.2f}{b:>9.2f}{b / a:>7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
