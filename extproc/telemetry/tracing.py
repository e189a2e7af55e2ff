"""Spans of RouteIQ decisions: a ``TracerProvider`` per process, never the global one.

One ``routeiq.decide {operation}`` span (INTERNAL) per decision, its start put back
at the moment deciding began; optionally one ``routeiq.upstream {operation}`` span
(CLIENT) from the end of the decision to the moment the response's usage is known,
carrying the ``gen_ai.usage.*`` tokens (a decision span cannot carry them: it ends
before the backend answers).

Attribute names follow the OpenTelemetry GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.request.model``, ``gen_ai.provider.name``...);
RouteIQ's own reasoning goes under ``routeiq.*``. ``gen_ai.request.model`` is the
model the backend is asked for (after routing); what the client sent is
``routeiq.requested_model``. The OpenAI Responses API is reported as operation
``chat`` (the semantic conventions have no ``responses`` value), with
``routeiq.endpoint`` telling the endpoints apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from extproc.api.openai import Endpoint, ParsedRequest
from extproc.decision import Decision
from extproc.policy.result import PolicyResult

TRACER_NAME = "routeiq"

OPERATION: Mapping[Endpoint, str] = MappingProxyType(
    {
        Endpoint.CHAT_COMPLETIONS: "chat",
        Endpoint.COMPLETIONS: "text_completion",
        Endpoint.EMBEDDINGS: "embeddings",
        Endpoint.RESPONSES: "chat",
    }
)
UNKNOWN_OPERATION = "chat"


def build_tracer_provider(
    resource: Resource, sample_ratio: float, processors: Sequence[SpanProcessor]
) -> TracerProvider:
    """Parent-based ratio sampling: a caller's sampled/not-sampled flag is obeyed;
    root traces (no ``traceparent``) are kept with probability ``sample_ratio``."""
    provider = TracerProvider(
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)), resource=resource
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def _put(attrs: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        attrs[key] = value


def decision_attributes(
    decision: Decision,
    request: ParsedRequest | None,
    operation: str,
    provider: str | None,
) -> dict[str, Any]:
    """Span attributes of one decision (only when the span is sampled)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": decision.upstream_model or decision.requested_model,
        "routeiq.decision_id": decision.id,
        "routeiq.outcome": decision.outcome.value,
        "routeiq.requested_model": decision.requested_model,
        "routeiq.config_version": decision.config_version,
    }
    _put(attrs, "gen_ai.provider.name", provider)
    if request is not None:
        attrs["routeiq.endpoint"] = request.endpoint.value
        attrs["gen_ai.request.stream"] = request.stream
        _put(attrs, "gen_ai.request.max_tokens", request.max_tokens)
        attrs["routeiq.prompt_tokens_estimate"] = request.prompt_tokens
    _put(attrs, "routeiq.backend", decision.backend)
    _put(attrs, "routeiq.profile", decision.profile)
    _put(attrs, "routeiq.category", decision.category)
    _put(attrs, "routeiq.tier", decision.tier)
    _put(attrs, "routeiq.strategy", decision.strategy)
    _put(attrs, "routeiq.variant", decision.variant)
    if decision.reasons:
        attrs["routeiq.reasons"] = decision.reasons
    if decision.rule_ids:
        attrs["routeiq.policy.rule_ids"] = decision.rule_ids
    if decision.error is not None:
        attrs["error.type"] = decision.error.code or decision.error.type
        attrs["routeiq.error.status"] = decision.error.status
    if decision.classification is not None:
        attrs["routeiq.score"] = decision.classification.score
    policy = decision.policy
    if policy is not None:
        attrs["routeiq.policy.outcome"] = policy_result_outcome(policy)
        attrs["routeiq.policy.engine"] = policy.engine
    if decision.fallbacks:
        attrs["routeiq.fallbacks"] = decision.fallbacks
    return attrs


def policy_result_outcome(policy: PolicyResult) -> str:
    """``allow``, ``deny``, ``dry_run_deny`` or ``unavailable``: the policy's outcome label."""
    if policy.engine_unavailable:
        return "unavailable"
    if not policy.allowed:
        return "deny"
    if policy.dry_run is not None and policy.dry_run.would_deny:
        return "dry_run_deny"
    return "allow"


def usage_attributes(
    operation: str,
    provider: str | None,
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    cached_tokens: int,
    reasoning_tokens: int,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    _put(attrs, "gen_ai.provider.name", provider)
    _put(attrs, "gen_ai.request.model", model)
    if cached_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = cached_tokens
    if reasoning_tokens:
        attrs["gen_ai.usage.reasoning.output_tokens"] = reasoning_tokens
    return attrs
