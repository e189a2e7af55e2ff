"""Observability of a RouteIQ process: spans, metrics, Prometheus text, worker aggregation.

Per process: ``Telemetry.from_settings(settings)``. Per decision:
``record_decision``; per response: ``record_usage``. In multi-worker mode each worker
runs a ``WorkerMetricsServer`` and the parent's admin serves ``aggregate_metrics``.
"""

from extproc.telemetry.core import DecisionRecord, Telemetry
from extproc.telemetry.prometheus import CONTENT_TYPE, merge_exposition
from extproc.telemetry.workers import WorkerMetricsServer, aggregate_metrics, scrape_worker

__all__ = [
    "CONTENT_TYPE",
    "DecisionRecord",
    "Telemetry",
    "WorkerMetricsServer",
    "aggregate_metrics",
    "merge_exposition",
    "scrape_worker",
]
