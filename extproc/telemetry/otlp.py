"""OTLP/gRPC exporters, imported only when ``otel_exporter=otlp``.

Needs ``opentelemetry-exporter-otlp-proto-grpc`` (pinned with the SDK). Spans go
through a ``BatchSpanProcessor`` (a background thread; the request path only enqueues,
and drops when the queue is full rather than block); metrics are pushed every 15 s
with cumulative temporality, like the Prometheus endpoint, the request-path
histograms (``aggregate.Histograms``) added to each export.
"""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from extproc.telemetry.aggregate import Histograms, MergingExporter
from extproc.telemetry.metrics import METER_NAME

EXPORT_INTERVAL_MS = 15_000
EXPORT_TIMEOUT_S = 10.0


def _insecure(endpoint: str) -> bool:
    return endpoint.startswith("http://")


def otlp_span_processor(endpoint: str) -> BatchSpanProcessor:
    exporter = OTLPSpanExporter(
        endpoint=endpoint, insecure=_insecure(endpoint), timeout=EXPORT_TIMEOUT_S
    )
    return BatchSpanProcessor(
        exporter,
        max_queue_size=8192,
        schedule_delay_millis=1000,
        max_export_batch_size=512,
        export_timeout_millis=int(EXPORT_TIMEOUT_S * 1000),
    )


def otlp_metric_reader(
    endpoint: str, histograms: Histograms, resource: Resource
) -> PeriodicExportingMetricReader:
    exporter = OTLPMetricExporter(
        endpoint=endpoint, insecure=_insecure(endpoint), timeout=EXPORT_TIMEOUT_S
    )
    merged = MergingExporter(
        exporter, histograms.metrics, resource, InstrumentationScope(METER_NAME)
    )
    return PeriodicExportingMetricReader(
        merged,
        export_interval_millis=EXPORT_INTERVAL_MS,
        export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
    )
