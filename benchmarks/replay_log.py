"""Write a decision log the way the server does, then time ``routeiq replay`` on it.

    .venv/bin/python benchmarks/replay_log.py --prompts models/realistic_eval.jsonl \\
        --new NEW.yaml [--config config/routeiq.yaml] [--premium-share X] [--log OUT.jsonl]

Each prompt of ``--prompts`` (JSONL with ``prompt``) is sent through the real decision
path (``extproc.decide.decide``, no state) under ``--config`` as an ``auto`` chat request
and written by the real ``DecisionLog`` with prompt logging on (what
``ROUTEIQ_LOG_PROMPTS=true`` does in ``routeiq serve``). Then the log is replayed under
``--new`` exactly as ``routeiq replay --log OUT --config NEW`` does; the report is
printed with the replay's decisions/s next to the logging pass's decisions/s (the same
decision path, so the ratio shows what reading and rebuilding the log costs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import orjson

from extproc.api.openai import Endpoint, parse_request
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.decision_log import DecisionLog, RotatingFileSink
from extproc.routing.replay import format_summary, read_logs, replay, summary, with_router
from extproc.routing.scoring import load_router, routing_source


def write_log(prompts: list[str], config: Path, out: Path) -> float:
    """Decide and log every prompt; returns decisions/s."""
    snapshot = build_snapshot(config)
    log = DecisionLog(RotatingFileSink(out, 1 << 30, 0), log_prompts=True)

    async def go() -> None:
        for prompt in prompts:
            body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
            request = parse_request(
                Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, orjson.dumps(body)
            )
            log.log_decision(await decide(request, snapshot, state=None), request, 0.0)

    start = time.perf_counter()
    try:
        asyncio.run(go())
        log.flush()
    finally:
        log.close()
        snapshot.close()
    return len(prompts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path("config/routeiq.yaml"))
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--premium-share", type=float, default=None)
    parser.add_argument("--log", type=Path, default=None)
    args = parser.parse_args()

    prompts = [json.loads(x)["prompt"] for x in args.prompts.read_text().splitlines() if x]
    with tempfile.TemporaryDirectory() as tmp:
        log = args.log or Path(tmp) / "decisions.jsonl"
        logging_rate = write_log(prompts, args.config, log)
        start = time.perf_counter()
        contents = read_logs([log])
        snapshot = build_snapshot(args.new, with_router=False)
        try:
            router = load_router(routing_source(args.new), args.premium_share)
            built = time.perf_counter()
            rows = replay(with_router(snapshot, router), contents)
        finally:
            snapshot.close()
        replay_rate = len(rows) / (time.perf_counter() - built)
    print(format_summary(summary(rows, contents)))
    print(
        f"logging pass {logging_rate:.0f} decisions/s; replay: read + build "
        f"{built - start:.1f} s, then {replay_rate:.0f} decisions/s "
        f"({replay_rate / logging_rate:.2f}x the logging pass)"
    )


if __name__ == "__main__":
    main()
