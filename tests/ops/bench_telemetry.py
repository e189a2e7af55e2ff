"""Per-decision cost of telemetry and of the decision log, on the request path.

Run: ``python -m tests.ops.bench_telemetry`` (from the repo root, in the venv).
Each figure is the median over 5 rounds of N calls, per call, in µs. The decision
is a real one from the demo config (``auto``: classification and policy in its
explanation), so attribute building is what production pays.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from extproc.config.snapshot import build_snapshot
from extproc.decision_log import DecisionLog, RotatingFileSink
from extproc.runtime import Runtime
from extproc.telemetry import Telemetry
from tests.ops.conftest import DEMO_CONFIG, chat, make_settings

N = 20_000
ROUNDS = 5


class NullExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call_us(fn: Callable[[], object], n: int = N) -> float:
    runs = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - start) / n / 1000)
    return statistics.median(runs)


def sdk_baseline_us() -> float:
    """What ``record_decision`` cost when it called the SDK's synchronous instruments:
    the five measurements of an ``auto`` decision, attribute dicts built once."""
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    meter = provider.get_meter("baseline")
    decisions, classifications = meter.create_counter("d"), meter.create_counter("c")
    duration, policy, embed = (meter.create_histogram(n, unit="s") for n in ("o", "p", "e"))
    d_attrs = {"backend": "eco", "profile": "auto", "outcome": "routed"}
    c_attrs = {"strategy": "centroid", "variant": "none", "category": "chat"}
    o_attrs, p_attrs = {"outcome": "routed"}, {"engine": "embedded", "outcome": "allow"}
    s_attrs = {"strategy": "centroid"}

    def record() -> None:
        decisions.add(1, d_attrs)
        duration.record(0.001, o_attrs)
        classifications.add(1, c_attrs)
        embed.record(0.002, s_attrs)
        policy.record(0.0001, p_attrs)

    result = per_call_us(record)
    provider.shutdown()
    return result


def main() -> None:
    snapshot = build_snapshot(DEMO_CONFIG)
    settings = make_settings()
    runtime = Runtime(settings=settings, snapshot=snapshot)
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    request = chat("auto", "Write a haiku about the sea.", {"x-request-id": "r-1"})
    decision = asyncio.run(runtime.decide(request))
    rows: list[tuple[str, float]] = []

    def telemetry(processors: list[BatchSpanProcessor], ratio: float) -> Telemetry:
        return Telemetry.from_settings(settings, span_processors=processors, sample_ratio=ratio)

    def cost(tel: Telemetry, hdrs: dict[str, str]) -> float:
        return per_call_us(lambda: tel.record_decision(decision, request, 0.001, hdrs,
                                                       snapshot=snapshot))  # fmt: skip

    t = telemetry([], 1.0)
    rows.append(("record_decision, no span exporter (metrics only)", cost(t, {})))
    rows.append(("  the same measurements through SDK Counter/Histogram (baseline)",
                 sdk_baseline_us()))  # fmt: skip
    rec = t.record_decision(decision, request, 0.001, {}, snapshot=snapshot)
    usage = {"prompt_tokens": 120, "completion_tokens": 300}
    rows.append(("record_usage, no span exporter", per_call_us(lambda: t.record_usage(rec, usage))))
    rows.append(("prometheus_text() (one scrape, per call)", per_call_us(t.prometheus_text, 200)))
    t.shutdown()

    for ratio in (1.0, 0.1):
        bsp = BatchSpanProcessor(NullExporter(), max_queue_size=N * 2)
        t = telemetry([bsp], ratio)
        rows.append((f"record_decision, batch span exporter, root ratio {ratio}", cost(t, {})))
        t.shutdown()
    bsp = BatchSpanProcessor(NullExporter(), max_queue_size=N * 2)
    t = telemetry([bsp], 0.1)
    rows.append(("record_decision, batch span exporter, sampled traceparent", cost(t, headers)))
    t.shutdown()

    with tempfile.TemporaryDirectory() as tmp:
        sink = RotatingFileSink(Path(tmp) / "d.jsonl", 50 * 1024 * 1024, 2)
        log = DecisionLog(sink, queue_max=10 * N * ROUNDS)
        rows.append(("DecisionLog.log_decision (enqueue only)",
                     per_call_us(lambda: log.log_decision(decision, request, 0.001))))  # fmt: skip
        start = time.perf_counter()
        log.flush(120)
        drained = time.perf_counter() - start
        log.close()
        lines = sum(len(f.read_bytes().splitlines()) for f in Path(tmp).iterdir())
    writer_us = None
    with tempfile.TemporaryDirectory() as tmp:
        sink = RotatingFileSink(Path(tmp) / "d.jsonl", 50 * 1024 * 1024, 2)
        log = DecisionLog(sink, queue_max=10 * N)
        start = time.perf_counter()
        for _ in range(N):
            log.log_decision(decision, request, 0.001)
        log.flush(120)
        writer_us = (time.perf_counter() - start) / N * 1e6
        log.close()
    rows.append(
        ("DecisionLog, N enqueues then flush: wall time per line (encode+write)", writer_us)
    )

    width = max(len(name) for name, _ in rows)
    for name, us in rows:
        print(f"{name:<{width}}  {us:8.2f} µs")
    print(f"(decision log: {lines} lines written; queue drained {drained:.2f} s after the loop)")
    runtime.snapshot.close()


if __name__ == "__main__":
    main()
