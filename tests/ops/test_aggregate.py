"""The request-path metric families produce what the OpenTelemetry SDK itself would."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from extproc.telemetry.aggregate import CounterFamily, Histograms
from extproc.telemetry.metrics import LATENCY_BUCKETS_S

# Values on, below, between and above the bucket bounds, in two series.
VALUES = [0.0, 0.00005, 0.00006, 0.001, 0.0010001, 0.3, 2.5, 7.0, 0.00025, 0.001]
SERIES = [("routed",), ("denied",)]


def sdk_points(values: Sequence[tuple[tuple[str, ...], float]]) -> dict[Any, Any]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hist = provider.get_meter("t").create_histogram(
        "h", unit="s", explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S
    )
    for (outcome,), v in values:
        hist.record(v, {"outcome": outcome})
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    provider.shutdown()
    return {dict(p.attributes or {})["outcome"]: p for p in metric.data.data_points}


def test_histogram_matches_the_sdk_aggregation() -> None:
    values = [(SERIES[i % 2], v) for i, v in enumerate(VALUES)]
    family = Histograms().family("h", "s", "d", ["outcome"], LATENCY_BUCKETS_S)
    for labels, v in values:
        family.record(labels, v)
    ours = family.metric(0)
    assert ours is not None
    mine: dict[Any, Any] = {dict(p.attributes or {})["outcome"]: p for p in ours.data.data_points}
    sdk = sdk_points(values)
    assert mine.keys() == sdk.keys() == {"routed", "denied"}
    for key, theirs in sdk.items():
        p = mine[key]
        assert tuple(p.bucket_counts) == tuple(theirs.bucket_counts)
        assert tuple(p.explicit_bounds) == tuple(theirs.explicit_bounds)
        assert (p.count, p.min, p.max) == (theirs.count, theirs.min, theirs.max)
        assert abs(p.sum - theirs.sum) < 1e-12


def test_histograms_without_records_render_nothing() -> None:
    hists = Histograms()
    hists.family("h", "s", "d", ["outcome"], LATENCY_BUCKETS_S)
    assert hists.metrics() == []


def test_counter_family_reports_running_totals_per_series() -> None:
    family = CounterFamily(["backend", "outcome"])
    family.add(("eco", "routed"))
    family.add(("eco", "routed"), 2)
    family.add(("none", "denied"))
    observations = family.observe(None)  # type: ignore[arg-type]
    observed = {tuple((o.attributes or {}).items()): o.value for o in observations}
    assert observed == {
        (("backend", "eco"), ("outcome", "routed")): 3,
        (("backend", "none"), ("outcome", "denied")): 1,
    }
