"""Prometheus text exposition of the OpenTelemetry metrics, and merging several of them.

Why not ``opentelemetry-exporter-prometheus``: its reader registers itself in
``prometheus_client``'s process-global ``REGISTRY``, so two ``Telemetry`` objects in one
process (tests, a parent and its admin) collide, and it cannot be given a registry.
``PrometheusTextReader`` is a plain ``MetricReader`` that renders on demand; families
are built as ``prometheus_client`` ``Metric`` objects so its writer does the escaping.

``merge_exposition`` sums the samples of several expositions (one per worker process)
per metric name and label set: right for counters and for histogram buckets, sums and
counts (every worker runs the same code, so bucket bounds agree), and for the gauges
RouteIQ exports (each is a count of something per process). Timestamps are dropped.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    MetricReader,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Metric as OtelMetric
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INVALID = re.compile(r"[^A-Za-z0-9_:]")
_UNIT_SUFFIX = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}


def prom_name(name: str, unit: str) -> str:
    """OTel instrument name and unit -> Prometheus family name (``a.b`` + ``s`` -> a_b_seconds)."""
    base = _INVALID.sub("_", name)
    suffix = _UNIT_SUFFIX.get(unit)
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base


def _label(key: str) -> str:
    return _INVALID.sub("_", key)


def _labels(attributes: Any) -> dict[str, str]:
    if not attributes:
        return {}
    return {_label(k): str(v) for k, v in attributes.items()}


class _Families:
    """Anything with ``collect()`` is what ``generate_latest`` renders."""

    __slots__ = ("_families",)

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Sequence[Metric]:
        return self._families


def render(families: Sequence[Metric]) -> bytes:
    """Prometheus text format 0.0.4 of ``families``."""
    return generate_latest(_Families(families))


def families_from_otel(data: MetricsData | None, extra: Sequence[OtelMetric] = ()) -> list[Metric]:
    """Prometheus families for every metric point in ``data`` and in ``extra``
    (cumulative temporality)."""
    out: dict[str, Metric] = {}
    collected = data.resource_metrics if data is not None else ()
    metrics = [m for rm in collected for sm in rm.scope_metrics for m in sm.metrics]
    for metric in [*metrics, *extra]:
        _add_metric(out, metric.name, metric.unit or "", metric.description or "", metric.data)
    return list(out.values())


def _add_metric(out: dict[str, Metric], name: str, unit: str, doc: str, data: Any) -> None:
    base = prom_name(name, unit)
    if isinstance(data, Sum):
        if data.is_monotonic:
            family = out.setdefault(base, Metric(base.removesuffix("_total"), doc, "counter"))
            sample = f"{family.name}_total"
        else:
            family = out.setdefault(base, Metric(base, doc, "gauge"))
            sample = base
        for n in data.data_points:
            family.add_sample(sample, _labels(n.attributes), float(n.value))
    elif isinstance(data, Gauge):
        family = out.setdefault(base, Metric(base, doc, "gauge"))
        for g in data.data_points:
            family.add_sample(base, _labels(g.attributes), float(g.value))
    elif isinstance(data, Histogram):
        family = out.setdefault(base, Metric(base, doc, "histogram"))
        for p in data.data_points:
            labels = _labels(p.attributes)
            cumulative = 0
            for bound, count in zip((*p.explicit_bounds, math.inf), p.bucket_counts, strict=True):
                cumulative += count
                le: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
                family.add_sample(f"{base}_bucket", {**labels, "le": le}, float(cumulative))
            family.add_sample(f"{base}_count", labels, float(p.count))
            family.add_sample(f"{base}_sum", labels, float(p.sum))


class PrometheusTextReader(MetricReader):
    """A pull ``MetricReader``: ``text()`` collects now and renders Prometheus text.

    ``extra`` returns metrics kept outside the SDK (``aggregate.Histograms.metrics``),
    rendered with what the SDK collected. Collection holds the SDK's locks for about
    a millisecond per few hundred series; it runs on a scrape, never on a request.
    """

    def __init__(self, extra: Callable[[], Sequence[OtelMetric]] = lambda: ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._latest: MetricsData | None = None
        self._extra = extra

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        self._latest = metrics_data

    def families(self) -> list[Metric]:
        with self._lock:
            self.collect()
            data, self._latest = self._latest, None
        return families_from_otel(data, self._extra())

    def text(self) -> bytes:
        return render(self.families())

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._latest = None


def merge_families(expositions: Iterable[str | bytes]) -> list[Metric]:
    """Sum samples per (sample name, label set) across expositions, family by family.

    A family's type and help come from the first exposition that has it. ``_created``
    samples keep the earliest value instead of a sum.
    """
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in expositions:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        for family in text_string_to_metric_families(text):
            if family.name not in merged:
                merged[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            acc = values[family.name]
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                if s.name.endswith("_created"):
                    acc[key] = min(acc.get(key, s.value), s.value)
                else:
                    acc[key] = acc.get(key, 0.0) + s.value
    for name, family in merged.items():
        for (sample, labels), value in values[name].items():
            family.add_sample(sample, dict(labels), value)
    return list(merged.values())


def merge_exposition(expositions: Iterable[str | bytes]) -> bytes:
    """One Prometheus text document summing ``expositions`` (see ``merge_families``)."""
    return render(merge_families(expositions))
