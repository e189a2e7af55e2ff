"""``routeiq report`` over a generated log of 100k decisions (plus their usage lines).

Run from the repository root::

    .venv/bin/python benchmarks/report.py [--decisions 100000]

Writes the log as three rotated files (``routeiq-decisions.jsonl.2.gz`` oldest and
gzipped, ``.1`` and the live file) in a temporary directory, with lines shaped exactly
as ``DecisionLog`` writes them (decision lines of about 1 KB, usage lines with costs).
Then it times, in the same run:

- the floor: reading every line and ``orjson.loads`` on it, nothing else;
- ``build_report`` (read, parse, aggregate: what every output format needs);
- rendering text, JSON and HTML from the aggregate.

It prints seconds and the report's cost as a ratio of the floor. Not a test: the
target (under 10 s for 100k decisions on the 2-core development machine) is read off
the output.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from extproc.report.cli import build_report  # noqa: E402
from extproc.report.html import render_html  # noqa: E402
from extproc.report.reader import lines, ordered  # noqa: E402
from extproc.report.text import render_text  # noqa: E402

BACKENDS = (("eco", "eco", "gpt-4o-mini", 0.15, 0.60), ("premium", "premium", "gpt-4o", 2.5, 10.0),
            ("local", "free", "meta-llama/Llama-3.1-8B-Instruct", 0.0, 0.0))  # fmt: skip
CATEGORIES = ("coding", "math", "chat", "summarize", "extract", "translate", "reasoning")
TEAMS = tuple(f"team-{i}" for i in range(12))
RULES = ("team_models.deny_premium", "confidential.external", "token_limits.too_large")


def _decision(rng: random.Random, i: int, ts: float) -> tuple[dict[str, Any], bool]:
    backend, tier, model, _, _ = rng.choices(BACKENDS, weights=(6, 3, 1))[0]
    team = rng.choice(TEAMS)
    roll = rng.random()
    outcome = "denied" if roll < 0.06 else "routed"
    budget = outcome == "denied" and roll < 0.02
    rules = [] if outcome == "routed" or budget else [rng.choice(RULES)]
    code = None if outcome == "routed" else ("rate_limit_exceeded" if budget else "policy_denied")
    routed = outcome == "routed"
    doc = {
        "type": "decision", "time": _iso(ts), "id": f"{i:016x}", "request_id": f"req-{i}",
        "caller": {"team": team, "user": f"user-{i % 500}", "api_key_hash": "3a1be4ebcfb5e066",
                   "source": "headers"},
        "endpoint": "chat/completions", "stream": i % 3 == 0, "requested_model": "auto",
        "model": model if routed else None, "backend": backend if routed else None,
        "profile": "auto", "category": rng.choice(CATEGORIES), "tier": tier if routed else None,
        "score": round(rng.random(), 4), "strategy": "centroid", "variant": None, "shadow": None,
        "outcome": outcome, "status": None if routed else (429 if budget else 403),
        "error_code": code, "reasons": ["profile auto", "category coding needs tier standard"],
        "rule_ids": rules, "budget_refused_by": ["team-daily-tokens"] if budget else [],
        "policy": {"engine": "embedded", "allowed": routed, "reason": "allowed",
                   "rule_ids": rules, "latency_us": 467.0},
        "excluded": {}, "fallbacks": ["eco", "local"], "config_version": "ee56d9a17525",
        "latency_ms": round(rng.lognormvariate(0.9, 0.5), 3), "prompt_tokens_estimate": 17,
        "prompt": "[redacted]",
    }  # fmt: skip
    return doc, routed


def _usage(rng: random.Random, decision: dict[str, Any], ts: float) -> dict[str, Any]:
    backend = next(b for b in BACKENDS if b[0] == decision["backend"])
    tin, tout = rng.randint(20, 2000), rng.randint(10, 800)
    cost = (tin * backend[3] + tout * backend[4]) / 1e6
    ref = (tin * 2.5 + tout * 10.0) / 1e6
    return {
        "type": "usage", "time": _iso(ts), "id": decision["id"], "input_tokens": tin,
        "output_tokens": tout, "cached_tokens": 0, "reasoning_tokens": 0,
        "estimated": rng.random() < 0.03, "backend": decision["backend"],
        "tier": decision["tier"], "team": decision["caller"]["team"],
        "cost_usd": round(cost, 9), "counterfactual_usd": round(ref, 9),
        "reference_backend": "premium",
    }  # fmt: skip


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def generate(directory: Path, decisions: int, seed: int = 7) -> list[Path]:
    """Three rotated files holding ``decisions`` decision lines and their usage lines."""
    rng = random.Random(seed)
    base = directory / "routeiq-decisions.jsonl"
    paths = [base.with_name(base.name + ".2.gz"), base.with_name(base.name + ".1"), base]
    start = dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp()
    step = 3 * 86400 / decisions  # three days of traffic
    per_file = -(-decisions // 3)
    i = 0
    for path in paths:
        chunk: list[bytes] = []
        for _ in range(min(per_file, decisions - i)):
            ts = start + i * step
            doc, routed = _decision(rng, i, ts)
            chunk.append(orjson.dumps(doc) + b"\n")
            if routed:
                chunk.append(orjson.dumps(_usage(rng, doc, ts + 0.8)) + b"\n")
            i += 1
        data = b"".join(chunk)
        path.write_bytes(gzip.compress(data, 6) if path.suffix == ".gz" else data)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = ordered(generate(Path(tmp), args.decisions))
        gen_s = time.perf_counter() - t0
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in paths)
        print(f"generated {args.decisions:,} decisions in {gen_s:.1f} s: {sizes}")

        t0 = time.perf_counter()
        n = 0
        for line in lines(paths):
            orjson.loads(line)
            n += 1
        floor_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = build_report(paths)
        build_s = time.perf_counter() - t0
        names = [str(p) for p in paths]
        t0 = time.perf_counter()
        text = render_text(report, names)
        js = orjson.dumps(report, option=orjson.OPT_INDENT_2)
        page = render_html(report, names)
        render_s = time.perf_counter() - t0
    print(f"lines: {n:,} ({report['decisions']['total']:,} decisions)")
    print(f"floor (read + orjson.loads every line): {floor_s:.2f} s")
    print(f"build_report (read, parse, aggregate):  {build_s:.2f} s "
          f"({build_s / floor_s:.2f}x the floor, {n / build_s:,.0f} lines/s)")  # fmt: skip
    print(f"render text + json + html: {render_s * 1000:.1f} ms "
          f"({len(text):,} / {len(js):,} / {len(page):,} bytes)")  # fmt: skip
    print(f"routeiq report total: {build_s + render_s:.2f} s (target: under 10 s)")


if __name__ == "__main__":
    main()
