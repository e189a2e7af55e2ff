"""``Telemetry``: the spans and metrics of one RouteIQ process, built once from Settings.

No OpenTelemetry globals are touched (``set_tracer_provider``, ``set_meter_provider``,
the global propagator): the providers belong to this object and are shut down with
it, so several can live in one process (tests, a parent and its workers' fork) and
nothing else in the process (a library's auto-instrumentation) can redirect them.

Cost model. ``record_decision`` is on the request path: a counter add and a
histogram record per instrument, each a dictionary update (``aggregate``: the SDK's
own ``add``/``record`` cost 6-30 µs each), plus a span only when a span exporter
is configured and the trace is sampled. Without an exporter no tracer exists and no
span object is made; with one, the parent-based ratio sampler decides before any
attribute is computed. Measured figures are in docs/operations.md.

The decision's typed results are read for two optional timings, so ``decide()``
stays free of telemetry: ``decision.classification`` (``embed_ms``, strategy, arm,
shadow) and ``decision.policy`` (engine, outcome, ``latency_s``); the explain
document is never built here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from extproc.api.openai import ParsedRequest
from extproc.api.usage import Usage, usage_from_object
from extproc.decision import Decision, Outcome
from extproc.state.types import StateStats
from extproc.telemetry.aggregate import Histograms
from extproc.telemetry.metrics import Instruments, build_instruments, build_meter_provider
from extproc.telemetry.prometheus import PrometheusTextReader
from extproc.telemetry.tracing import (
    OPERATION,
    TRACER_NAME,
    UNKNOWN_OPERATION,
    build_tracer_provider,
    decision_attributes,
    policy_result_outcome,
    usage_attributes,
)

if TYPE_CHECKING:
    from extproc.config.settings import Settings
    from extproc.config.snapshot import Snapshot
    from extproc.cost.accountant import CostRecord

SERVICE_NAME = "routeiq"
RELOAD_HISTORY = 20  # (time, event, version) entries kept for the admin dashboard


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What ``record_usage`` needs later about a decision (keep it with the stream)."""

    decision: Decision
    operation: str
    provider: str | None
    span_context: SpanContext | None  # the decision span, when it was sampled
    decided_ns: int  # wall clock (ns) at which the decision ended


class Telemetry:
    """Spans and metrics of one process. Build with ``from_settings``; ``shutdown`` at exit."""

    def __init__(
        self,
        *,
        resource: Resource,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        sample_ratio: float = 1.0,
        histograms: Histograms | None = None,
    ) -> None:
        # The request-path histograms; every exporter adds ``histograms.metrics()`` to
        # what the SDK collects (readers built here, or given with the same object).
        self.histograms = histograms if histograms is not None else Histograms()
        self._prometheus = PrometheusTextReader(extra=self.histograms.metrics)
        self.meter_provider = build_meter_provider(resource, [self._prometheus, *metric_readers])
        self.tracer_provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if span_processors:
            self.tracer_provider = build_tracer_provider(resource, sample_ratio, span_processors)
            self._tracer = self.tracer_provider.get_tracer(TRACER_NAME)
        self._propagator = TraceContextTextMapPropagator()
        self._root = Context()  # parent of spans without a traceparent: no ambient context
        self._config_version: str | None = None
        self.reload_history: deque[tuple[float, str, str | None]] = deque(maxlen=RELOAD_HISTORY)
        self._log_dropped: Callable[[], int] = lambda: 0
        self._state_stats: Callable[[], StateStats | None] = lambda: None
        self.instruments: Instruments = build_instruments(
            self.meter_provider,
            self.histograms,
            lambda: self._config_version,
            lambda: self._log_dropped(),
            lambda: self._state_stats(),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        instance: str | None = None,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        sample_ratio: float | None = None,
    ) -> Telemetry:
        """The process's telemetry: OTLP spans and metrics when ``otel_exporter=otlp``.

        ``instance`` names the process in ``service.instance.id`` (``worker-0``...).
        Extra processors/readers are for tests (in-memory exporters).
        ``sample_ratio`` defaults to ``settings.otel_sample_ratio`` when that setting
        exists, else 1.0.
        """
        attributes: dict[str, str] = {"service.name": SERVICE_NAME}
        if instance is not None:
            attributes["service.instance.id"] = instance
        processors = list(span_processors)
        readers = list(metric_readers)
        resource = Resource(attributes)
        histograms = Histograms()
        if settings.otel_exporter == "otlp":
            from extproc.telemetry.otlp import otlp_metric_reader, otlp_span_processor

            processors.append(otlp_span_processor(settings.otlp_endpoint))
            readers.append(otlp_metric_reader(settings.otlp_endpoint, histograms, resource))
        ratio = sample_ratio
        if ratio is None:
            ratio = float(getattr(settings, "otel_sample_ratio", 1.0))
        return cls(
            resource=resource,
            span_processors=processors,
            metric_readers=readers,
            sample_ratio=ratio,
            histograms=histograms,
        )

    # -- per request ------------------------------------------------------------------

    def record_decision(
        self,
        decision: Decision,
        request: ParsedRequest | None,
        elapsed_s: float,
        headers: Mapping[str, str] | None = None,
        *,
        snapshot: Snapshot | None = None,
    ) -> DecisionRecord:
        """Count one decision and, when traced, emit its span; call once per decision.

        ``elapsed_s`` is the time spent deciding (the span starts that long before
        now). ``headers`` are the request's (lower-case names): a W3C ``traceparent``
        there makes the span a child of the caller's. ``snapshot`` (the one the
        request pinned) gives the backend's provider for ``gen_ai.provider.name``.
        """
        ins = self.instruments
        outcome = decision.outcome.value
        backend = decision.backend or "none"
        ins.decisions.add((backend, decision.profile or "explicit", outcome))
        ins.decision_duration.record((outcome,), elapsed_s)
        if decision.outcome is Outcome.DENIED:
            ins.denials.add((decision.reasons[0] if decision.reasons else "unknown",))
            for rule in decision.rule_ids:
                ins.rule_denials.add(("policy", rule))
            for limit in decision.budget_refused_by:
                ins.rule_denials.add(("budget", limit))
        self._record_timings(decision)
        provider = None
        if snapshot is not None and decision.backend is not None:
            spec = snapshot.backends.get(decision.backend)
            provider = spec.provider if spec is not None else None
        operation = OPERATION[request.endpoint] if request is not None else UNKNOWN_OPERATION
        end_ns = time.time_ns()
        span_context = None
        if self._tracer is not None:
            span_context = self._decision_span(
                decision, request, operation, provider, elapsed_s, end_ns, headers
            )
        return DecisionRecord(decision, operation, provider, span_context, end_ns)

    def _record_timings(self, decision: Decision) -> None:
        c = decision.classification
        if c is not None:
            ins = self.instruments
            ins.classifications.add((c.strategy, c.variant or "none", c.category))
            if c.shadow_disagrees:
                assert c.shadow is not None
                ins.shadow_disagreements.add((c.strategy, c.shadow.strategy))
            if c.embed_ms > 0:
                ins.embedding_duration.record((c.strategy,), c.embed_ms / 1000)
        policy = decision.policy
        if policy is not None:
            labels = (policy.engine, policy_result_outcome(policy))
            self.instruments.policy_duration.record(labels, policy.latency_s)

    def _decision_span(
        self,
        decision: Decision,
        request: ParsedRequest | None,
        operation: str,
        provider: str | None,
        elapsed_s: float,
        end_ns: int,
        headers: Mapping[str, str] | None,
    ) -> SpanContext | None:
        assert self._tracer is not None
        parent = self._root
        if headers is not None and "traceparent" in headers:
            parent = self._propagator.extract(headers, context=self._root)
        span = self._tracer.start_span(
            f"routeiq.decide {operation}",
            context=parent,
            kind=SpanKind.INTERNAL,
            start_time=end_ns - int(elapsed_s * 1e9),
        )
        if not span.is_recording():
            return None
        span.set_attributes(decision_attributes(decision, request, operation, provider))
        if decision.outcome is Outcome.FAILED_OPEN:
            span.set_status(Status(StatusCode.ERROR, "failed open"))
        span.end(end_time=end_ns)
        return span.get_span_context()

    # -- per response -----------------------------------------------------------------

    def record_usage(
        self,
        record: DecisionRecord,
        usage: Usage | Mapping[str, Any],
        *,
        status: int | None = None,
    ) -> None:
        """Token usage of the response to ``record``'s decision (once per response).

        Records ``gen_ai.client.token.usage`` (input and output) and, when the decision
        was traced, a CLIENT span from the decision's end to now with the usage.
        """
        u = usage if isinstance(usage, Usage) else usage_from_object(dict(usage))
        if u is None:
            return
        decision = record.decision
        model = decision.upstream_model or decision.backend or "unknown"
        provider = record.provider or "unknown"
        hist = self.instruments.token_usage
        hist.record(("input", record.operation, provider, model), u.prompt_tokens)
        hist.record(("output", record.operation, provider, model), u.completion_tokens)
        if record.span_context is None or self._tracer is None:
            return
        parent = trace.set_span_in_context(trace.NonRecordingSpan(record.span_context), self._root)
        span = self._tracer.start_span(
            f"routeiq.upstream {record.operation}",
            context=parent,
            kind=SpanKind.CLIENT,
            start_time=record.decided_ns,
        )
        if span.is_recording():
            attrs = usage_attributes(
                record.operation,
                record.provider,
                decision.upstream_model,
                u.prompt_tokens,
                u.completion_tokens,
                u.cached_tokens,
                u.reasoning_tokens,
            )
            attrs["routeiq.decision_id"] = decision.id
            if decision.backend is not None:
                attrs["routeiq.backend"] = decision.backend
            if status is not None:
                attrs["http.response.status_code"] = status
            span.set_attributes(attrs)
        span.end()

    def record_cost(self, cost: CostRecord) -> None:
        """A priced response (``extproc.cost``): its cost, and its saving against the
        reference (``saved`` when positive, ``overspent`` when negative)."""
        ins = self.instruments
        labels = (cost.backend, cost.tier, cost.team_label)
        ins.cost.add(labels, cost.cost_usd)
        saved = cost.counterfactual_usd - cost.cost_usd
        if saved > 0:
            ins.cost_saved.add(labels, saved)
        elif saved < 0:
            ins.cost_overspent.add(labels, -saved)

    # -- events -----------------------------------------------------------------------

    def record_error(self, kind: str) -> None:
        """An internal error (``kind`` from a fixed set: ``decide``, ``phase``...)."""
        self.instruments.errors.add((kind,))

    def record_reload(self, ok: bool, version: str | None = None) -> None:
        """A config reload attempt; on success ``version`` becomes the served version."""
        self.instruments.reloads.add(("success" if ok else "failure",))
        if ok and version is not None:
            self._config_version = version
        self.reload_history.append((time.time(), "reloaded" if ok else "rejected", version))

    def set_config_version(self, version: str) -> None:
        """The version served (``routeiq_config_info``); call once at start-up."""
        self._config_version = version
        self.reload_history.append((time.time(), "started", version))

    def watch_state(self, stats: Callable[[], StateStats | None]) -> None:
        """Export the state store's ``StateStats`` (outages, fallbacks, degraded...)."""
        self._state_stats = stats

    def watch_dropped(self, dropped: Callable[[], int]) -> None:
        """Export ``dropped()`` (e.g. ``DecisionLog.dropped``) as the dropped-lines counter."""
        self._log_dropped = dropped

    # -- export -----------------------------------------------------------------------

    def prometheus_text(self) -> bytes:
        """This process's metrics in Prometheus text format (collects now)."""
        return self._prometheus.text()

    def shutdown(self) -> None:
        """Flush exporters and stop their threads; the object is unusable afterwards."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
