"""The metric instruments of one RouteIQ process, on a ``MeterProvider`` it owns.

Label values come only from bounded sets (backend and model names from the config,
outcomes, profiles, error kinds from code): never a client-chosen model name, user or
path, so a client cannot blow up the number of series.

Names follow OpenTelemetry (``routeiq.decision.duration``, unit ``s``);
``PrometheusTextReader`` turns them into Prometheus names
(``routeiq_decision_duration_seconds``). ``gen_ai.client.token.usage`` follows the
GenAI semantic conventions, with their recommended bucket boundaries.

The per-request instruments are :mod:`extproc.telemetry.aggregate` families (counters
exported as observable counters, histograms added to every export), not SDK
``Counter``/``Histogram`` objects: same names, units, labels and data, a fraction of
the CPU per measurement. Each family is given its label names here; callers pass the
values as a tuple in that order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from extproc.state.types import StateStats
from extproc.telemetry.aggregate import CounterFamily, HistogramFamily, Histograms

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

    decisions: CounterFamily  # backend, profile, outcome
    decision_duration: HistogramFamily  # outcome
    policy_duration: HistogramFamily  # engine, outcome
    embedding_duration: HistogramFamily  # strategy
    denials: CounterFamily  # reason
    errors: CounterFamily  # kind
    token_usage: HistogramFamily  # token type, operation, provider, model (gen_ai.*)
    reloads: CounterFamily  # result
    classifications: CounterFamily  # strategy, variant, category
    shadow_disagreements: CounterFamily  # strategy, shadow_strategy
    cost: CounterFamily  # backend, tier, team (USD, extproc.cost)
    cost_saved: CounterFamily  # backend, tier, team
    cost_overspent: CounterFamily  # backend, tier, team
    rule_denials: CounterFamily  # kind (policy/budget), rule


def build_meter_provider(
    resource: Resource,
    readers: Sequence[MetricReader],
) -> MeterProvider:
    """A provider that is never installed as the global one (see ``Telemetry``)."""
    return MeterProvider(metric_readers=list(readers), resource=resource)


def build_instruments(
    provider: MeterProvider,
    histograms: Histograms,
    config_version: Callable[[], str | None],
    log_dropped: Callable[[], int],
    state_stats: Callable[[], StateStats | None] = lambda: None,
) -> Instruments:
    """Create the instruments; the callbacks feed the observable ones at collection."""
    meter = provider.get_meter(METER_NAME)
    _process_instruments(meter, config_version, log_dropped, state_stats)

    def counter(name: str, unit: str, description: str, *labels: str) -> CounterFamily:
        family = CounterFamily(labels)
        meter.create_observable_counter(name, [family.observe], unit=unit, description=description)
        return family

    def latency(name: str, description: str, *labels: str) -> HistogramFamily:
        return histograms.family(name, "s", description, labels, LATENCY_BUCKETS_S)

    return Instruments(
        decisions=counter(
            "routeiq.decisions",
            "{decision}",
            "Decisions by backend, profile and outcome.",
            "backend", "profile", "outcome",
        ),
        decision_duration=latency(
            "routeiq.decision.duration", "Time to decide one request (parse excluded).", "outcome"
        ),
        policy_duration=latency(
            "routeiq.policy.duration", "Policy engine time per request.", "engine", "outcome"
        ),
        embedding_duration=latency(
            "routeiq.embedding.duration", "Prompt embedding time per classified request.",
            "strategy",
        ),
        denials=counter("routeiq.denials", "{request}", "Requests refused, by reason.", "reason"),
        errors=counter("routeiq.errors", "{error}", "Internal errors, by kind.", "kind"),
        token_usage=histograms.family(
            "gen_ai.client.token.usage",
            "{token}",
            "Tokens used per response, by type (input/output) and model.",
            ("gen_ai.token.type", "gen_ai.operation.name", "gen_ai.provider.name",
             "gen_ai.request.model"),
            TOKEN_BUCKETS,
        ),
        reloads=counter(
            "routeiq.config.reloads",
            "{reload}",
            "Config reloads, by result (success/failure).",
            "result",
        ),
        classifications=counter(
            "routeiq.classifications",
            "{request}",
            "Classified requests by strategy, experiment variant and category (A/B arms).",
            "strategy", "variant", "category",
        ),
        shadow_disagreements=counter(
            "routeiq.shadow.disagreements",
            "{request}",
            "Requests where the shadow strategy chose another tier or category.",
            "strategy", "shadow_strategy",
        ),
        # USD at the backends' prices (extproc.cost). Savings against the reference can
        # be negative and a counter never goes down: the negative part is its own
        # counter, net saved = saved - overspent.
        cost=counter(
            "routeiq.cost.usd", "USD", "Cost of served responses, USD.",
            "backend", "tier", "team",
        ),
        cost_saved=counter(
            "routeiq.cost.saved.usd", "USD", "Saved against the reference backend, USD.",
            "backend", "tier", "team",
        ),
        cost_overspent=counter(
            "routeiq.cost.overspent.usd", "USD", "Spent above the reference backend, USD.",
            "backend", "tier", "team",
        ),
        rule_denials=counter(
            "routeiq.rule.denials",
            "{request}",
            "Refusals by policy rule id (kind=policy) or budget limit name (kind=budget).",
            "kind", "rule",
        ),
    )  # fmt: skip


def _process_instruments(
    meter: Meter,
    config_version: Callable[[], str | None],
    log_dropped: Callable[[], int],
    state_stats: Callable[[], StateStats | None],
) -> None:
    """The observable instruments about the process (state store, config, log drops)."""

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
