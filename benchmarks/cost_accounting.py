"""Per-response cost of cost accounting, and of the dashboard's summary, in process.

Run from the repository root::

    .venv/bin/python benchmarks/cost_accounting.py [--n 20000]

On real decisions of tests/cost/cost.yaml (explicit model and profile requests, teams
from a trusted header) it times, per call, median of 5 rounds:

- ``Telemetry.record_usage`` (the token histograms every accounted response already
  records): the baseline;
- ``CostBook.price`` (look-ups and the arithmetic) and ``Telemetry.record_cost`` (the
  counter adds), the work cost accounting adds to each response;
- ``summarize`` of the process's Prometheus text, what one dashboard refresh costs.

It prints microseconds and the added work as a ratio of the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from extproc.api.openai import Endpoint, parse_request  # noqa: E402
from extproc.api.usage import Usage  # noqa: E402
from extproc.config.settings import Settings  # noqa: E402
from extproc.config.snapshot import build_snapshot  # noqa: E402
from extproc.cost.accountant import CostBook  # noqa: E402
from extproc.dashboard.summary import summarize  # noqa: E402
from extproc.decide import decide  # noqa: E402
from extproc.telemetry import Telemetry  # noqa: E402

CONFIG = REPO / "tests" / "cost" / "cost.yaml"


def per_call_us(fn: Callable[[int], None], n: int, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        times.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    snapshot = build_snapshot(CONFIG, with_policy=False, with_router=False)
    telemetry = Telemetry.from_settings(Settings(config_path=CONFIG, decision_log="off"))
    decisions = []
    for model, team in (("gpt-4o", "search"), ("premium", "ads"), ("gpt-4o-mini", "other")):
        body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
        request = parse_request(Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions",
                                {"x-team": team}, body)  # fmt: skip
        decision = await decide(request, snapshot)
        decisions.append((decision, telemetry.record_decision(decision, request, 0.001)))
    usage = Usage(1000, 500, 1500, cached_tokens=200)
    book = CostBook()
    costs = [book.price(d, usage, snapshot) for d, _ in decisions]
    k = len(decisions)

    baseline = per_call_us(lambda i: telemetry.record_usage(decisions[i % k][1], usage), args.n)
    price = per_call_us(lambda i: book.price(decisions[i % k][0], usage, snapshot), args.n)

    def record(i: int) -> None:
        cost = costs[i % k]
        assert cost is not None
        telemetry.record_cost(cost)

    counters = per_call_us(record, args.n)
    text = telemetry.prometheus_text()
    t0 = time.perf_counter()
    for _ in range(50):
        summarize(text)
    summary_ms = (time.perf_counter() - t0) / 50 * 1000
    print(f"record_usage (token histograms, baseline): {baseline:.2f} us per response")
    print(f"CostBook.price:                            {price:.2f} us per response")
    print(f"Telemetry.record_cost (2 counter adds):    {counters:.2f} us per response")
    print(f"cost accounting adds {(price + counters) / baseline:.2f}x the baseline's work")
    print(f"dashboard summarize(): {summary_ms:.2f} ms for {len(text):,} bytes of metrics text")
    telemetry.shutdown()
    snapshot.close()


if __name__ == "__main__":
    asyncio.run(main())
