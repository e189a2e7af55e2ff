"""Respond stage: turn the stage results into the proxy's instructions.

The body rewrite (``model`` to the backend's own name, ``stream_options`` when a
stream's usage must be read), the headers for the upstream and for the client, and
whether the response must be read for usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from extproc import headers as h
from extproc.api.openai import ParsedRequest
from extproc.api.usage import ensure_stream_usage
from extproc.config.schema import RoutingConfigSpec
from extproc.pipeline.analyze import Analysis
from extproc.pipeline.ask import Ask
from extproc.pipeline.charge import Charge
from extproc.pipeline.route import Route
from extproc.policy import PolicyResult
from extproc.routing.quality import QualityVerdict


@dataclass(frozen=True, slots=True)
class Instructions:
    """What the adapter does to the request and the response."""

    upstream_model: str
    body_overrides: dict[str, Any]
    accounting: bool
    strip_usage_chunk: bool
    upstream_headers: tuple[tuple[str, str], ...]
    response_headers: tuple[tuple[str, str], ...]


# Headers a policy may never set: framing, the route header and RouteIQ's own decision
# headers (a policy adds information; it does not re-route or re-frame the request).
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "te", "upgrade"})
_DECISION = frozenset(
    {
        h.BACKEND,
        h.DECISION_ID,
        h.TIER,
        h.NEEDED_TIER,
        h.CATEGORY,
        h.QUALITY,
        h.ROUTED_PROFILE,
        h.OVERHEAD_MS,
        h.PROFILE,
    }
)


def _reserved(spec: RoutingConfigSpec) -> frozenset[str]:
    return _FRAMING | _DECISION | {spec.route_header}


def quality_header(q: QualityVerdict) -> str:
    """``need=0.712; eco<0.300; premium>=0.620; rule=premium``: the need, the bars, and
    the tier the rule chose before category ceilings and signal rules (the tier the
    request needed is ``x-routeiq-needed-tier``)."""
    bars = "; ".join(
        f"{tier}{'>=' if tier != 'eco' else '<'}{bar:.3f}" for tier, bar in sorted(q.bars.items())
    )
    return f"need={q.need:.3f}; {bars}; rule={q.tier}"


def _body(
    spec: RoutingConfigSpec, request: ParsedRequest, upstream_model: str, paid: Charge
) -> tuple[dict[str, Any], bool, bool]:
    overrides: dict[str, Any] = {}
    if upstream_model != request.model:
        overrides["model"] = upstream_model
    reservation = paid.reservation
    accounting = spec.usage_accounting == "always" or (
        spec.usage_accounting == "auto" and reservation is not None and reservation.tokens > 0
    )
    strip_usage = False
    if accounting and request.stream:
        patched, strip_usage = ensure_stream_usage(request.body, request.endpoint)
        if strip_usage:
            overrides["stream_options"] = patched["stream_options"]
    return overrides, accounting, strip_usage


def instructions(
    spec: RoutingConfigSpec,
    request: ParsedRequest,
    decision_id: str,
    ask: Ask,
    analysis: Analysis,
    policy: PolicyResult | None,
    chosen: Route,
    paid: Charge,
) -> Instructions:
    backend = chosen.backend
    upstream_model = ask.upstream_models[backend.name]
    overrides, accounting, strip_usage = _body(spec, request, upstream_model, paid)
    tiers = [(h.TIER, backend.tier.value), (h.NEEDED_TIER, chosen.target.value)]
    c = analysis.classification
    if c is not None:
        tiers.append((h.CATEGORY, c.category))
        if c.quality is not None:
            tiers.append((h.QUALITY, quality_header(c.quality)))
    response = [*paid.headers]
    rh = spec.response_headers
    if rh.backend:
        response.append((h.BACKEND, backend.name))
    if rh.decision_id:
        response.append((h.DECISION_ID, decision_id))
    if ask.profile is not None:
        response += [*tiers, (h.ROUTED_PROFILE, ask.profile.value)]
    # Also upstream: a proxy that does not run the response phase copies them back.
    upstream = [(h.BACKEND, backend.name), (h.DECISION_ID, decision_id)]
    if ask.profile is not None:
        upstream += tiers
    if policy is not None:
        reserved = _reserved(spec)
        upstream += [
            (k, v) for k, v in policy.headers if k.lower() not in reserved and k[:1] != ":"
        ]
        response += [
            (k, v) for k, v in policy.response_headers if k.lower() not in reserved and k[:1] != ":"
        ]
    if rh.set_by == "proxy":  # the proxy copies the client's headers from the request
        sent = {k for k, _ in upstream}
        upstream += [(k, v) for k, v in response if k not in sent]
    return Instructions(
        upstream_model, overrides, accounting, strip_usage, tuple(upstream), tuple(response)
    )
