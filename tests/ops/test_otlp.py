"""ROUTEIQ_OTEL_EXPORTER=otlp: spans and metrics reach a (fake) OTLP/gRPC collector."""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from extproc.runtime import Runtime
from extproc.telemetry import Telemetry
from tests.ops.conftest import chat, make_settings


class Collector(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: list[str] = []

    def Export(self, request: Any, context: Any) -> Any:
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    self.spans.extend(ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                self.metrics.extend(m.name for m in sm.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def test_otlp_export(runtime: Runtime) -> None:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        settings = make_settings(otel_exporter="otlp", otlp_endpoint=f"http://127.0.0.1:{port}")
        telemetry = Telemetry.from_settings(settings)
        request = chat("gpt-4o")
        decision = await runtime.decide(request)
        telemetry.record_decision(decision, request, 0.001, {}, snapshot=runtime.snapshot)
        telemetry.shutdown()  # flushes the batch span processor and the metric reader
    finally:
        server.stop(None)
    assert [s.name for s in collector.spans] == ["routeiq.decide chat"]
    attrs = {a.key: a.value for a in collector.spans[0].attributes}
    assert attrs["gen_ai.provider.name"].string_value == "openai"
    assert "routeiq.decisions" in collector.metrics
    # The request-path histograms ride along in the same scope as the SDK's metrics.
    assert {"routeiq.decision.duration", "routeiq.policy.duration"} <= set(collector.metrics)
