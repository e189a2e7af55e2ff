"""The metric instruments of one RouteIQ process, on a ``MeterProvider`` it owns.

Label values come only from bounded sets (backend and model names from the config,
outcomes, profiles, error kinds from code): never a client-chosen model name, user or
path, so a client cannot blow up the number of series.

Names follow OpenTelemetry (``routeiq.decision.duration``, unit ``s``);
``PrometheusTextReader`` turns them into Prometheus names
(``routeiq_decision_duration_seconds``). ``gen_ai.client.token.usage`` follows the
GenAI semantic conventions, with their recommended bucket boundaries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from extproc.state.types import StateStats

# Decision latency lives between 50 µs (explicit model) and tens of ms (remote OPA,
# embedding a long prompt); 2.5 s catches a stuck dependency.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
# From the GenAI semantic conventions for gen_ai.client.token.usage.
TOKEN_BUCKETS: tuple[float, ...] = tuple(float(4**i) for i in range(14))

METER_NAME = "routeiq"


@dataclass(frozen=True, slots=True)
class Instruments:
    """Every instrument RouteIQ records into; created once per process."""

    decisions: Counter
    decision_duration: Histogram
    policy_duration: Histogram
    embedding_duration: Histogram
    denials: Counter
    errors: Counter
    token_usage: Histogram
    reloads: Counter
    classifications: Counter
    shadow_disagreements: Counter


def build_meter_provider(
    resource: Resource,
    readers: Sequence[MetricReader],
) -> MeterProvider:
    """A provider that is never installed as the global one (see ``Telemetry``)."""
    return MeterProvider(metric_readers=list(readers), resource=resource)


def build_instruments(
    provider: MeterProvider,
    config_version: Callable[[], str | None],
    log_dropped: Callable[[], int],
    state_stats: Callable[[], StateStats | None] = lambda: None,
) -> Instruments:
    """Create the instruments; the callbacks feed the observable ones at collection."""
    meter = provider.get_meter(METER_NAME)

    def _state(field: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            stats = state_stats()
            return [] if stats is None else [Observation(int(getattr(stats, field)))]

        return observe

    # The shared state store's own counters (see extproc.state.StateStats): a Redis
    # outage is visible as a metric even though no request fails (fail-open).
    for field, kind, unit, text in (
        ("outages", "counter", "{outage}", "Shared state store outages (healthy -> down)."),
        ("fallback_calls", "counter", "{call}", "State calls answered locally (fail-open)."),
        ("refused_unavailable", "counter", "{call}", "State calls refused (fail-closed)."),
        ("errors", "counter", "{error}", "Failed calls to the shared state store."),
        ("degraded", "gauge", "1", "1 while serving without the shared state store."),
    ):
        create = (
            meter.create_observable_counter
            if kind == "counter"
            else (meter.create_observable_gauge)
        )
        create(f"routeiq.state.{field}", [_state(field)], unit=unit, description=text)

    def _config_info(_: CallbackOptions) -> Iterable[Observation]:
        version = config_version()
        return [Observation(1, {"version": version})] if version else []

    def _dropped(_: CallbackOptions) -> Iterable[Observation]:
        return [Observation(log_dropped())]

    meter.create_observable_gauge(
        "routeiq.config.info",
        [_config_info],
        unit="1",
        description="1 per process, labelled with the config version it serves.",
    )
    meter.create_observable_counter(
        "routeiq.decision_log.dropped",
        [_dropped],
        unit="{line}",
        description="Decision log lines dropped because the writer queue was full.",
    )

    def latency(name: str, description: str) -> Histogram:
        return meter.create_histogram(
            name,
            unit="s",
            description=description,
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS_S,
        )

    def counter(name: str, unit: str, description: str) -> Counter:
        return meter.create_counter(name, unit=unit, description=description)

    return Instruments(
        decisions=counter(
            "routeiq.decisions", "{decision}", "Decisions by backend, profile and outcome."
        ),
        decision_duration=latency(
            "routeiq.decision.duration", "Time to decide one request (parse excluded)."
        ),
        policy_duration=latency("routeiq.policy.duration", "Policy engine time per request."),
        embedding_duration=latency(
            "routeiq.embedding.duration", "Prompt embedding time per classified request."
        ),
        denials=counter("routeiq.denials", "{request}", "Requests refused, by reason."),
        errors=counter("routeiq.errors", "{error}", "Internal errors, by kind."),
        token_usage=meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per response, by type (input/output) and model.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        ),
        reloads=counter(
            "routeiq.config.reloads", "{reload}", "Config reloads, by result (success/failure)."
        ),
        classifications=counter(
            "routeiq.classifications",
            "{request}",
            "Classified requests by strategy, experiment variant and category (A/B arms).",
        ),
        shadow_disagreements=counter(
            "routeiq.shadow.disagreements",
            "{request}",
            "Requests where the shadow strategy chose another tier or category.",
        ),
    )
