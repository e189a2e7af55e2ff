"""Steps of ``decide()`` that read better on their own: what was asked, policy, errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from extproc.api.errors import ApiError, model_not_found
from extproc.api.identity import Caller
from extproc.api.openai import ParsedRequest
from extproc.config.schema import Backend, Tier
from extproc.config.snapshot import Snapshot
from extproc.policy import PolicyResult, build_input
from extproc.routing import Classification
from extproc.routing.profiles import Profile, profile_from_header, profile_from_model
from extproc.routing.selector import Constraints, Selection
from extproc.state import StateStore
from extproc.state.ratelimit import limits_document


@dataclass(frozen=True, slots=True)
class Ask:
    """What the client asked for, after aliases and profiles are resolved."""

    profile: Profile | None
    candidates: tuple[Backend, ...]
    upstream_models: Mapping[str, str]  # backend name -> model name the backend knows
    public_names: Mapping[str, str]  # backend name -> public model name (for limits)


def resolve(snapshot: Snapshot, model: str, headers: Mapping[str, str]) -> Ask | ApiError:
    """An explicit model (or alias), a profile name, or a 404 ``model_not_found``."""
    routes = snapshot.models.get(model)
    if routes is not None:
        return Ask(
            None,
            tuple(r.backend for r in routes),
            {r.backend.name: r.model.upstream_name for r in routes},
            {r.backend.name: r.model.name for r in routes},
        )
    profile = profile_from_model(model)
    if profile is None:
        return model_not_found(model)
    if profile is Profile.AUTO:
        profile = profile_from_header(headers) or profile
    backends = snapshot.spec.backends
    return Ask(
        profile,
        backends,
        {b.name: b.default_model.upstream_name for b in backends},
        {b.name: b.default_model.name for b in backends},
    )


def classification_doc(c: Classification) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "category": c.category,
        "tier": c.tier,
        "score": round(c.score, 4),
        "scores": {k: round(v, 4) for k, v in c.scores.items()},
        "strategy": c.strategy,
        "variant": c.variant,
        "embed_ms": round(c.embed_ms, 3),
    }
    if c.rules:
        doc["rules"] = list(c.rules)
    if c.shadow is not None:
        doc["shadow"] = {
            "strategy": c.shadow.strategy,
            "category": c.shadow.category,
            "tier": c.shadow.tier,
            "disagrees": c.shadow_disagrees,
        }
    return doc


async def evaluate_policy(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller,
    ask: Ask,
    classification: Classification | None,
    state: StateStore | None,
) -> PolicyResult:
    """Build the input document and evaluate it. ``StateUnavailable`` may escape (the
    caller answers it like a budget check that could not be made)."""
    assert snapshot.policy is not None
    spec = snapshot.spec.policy
    findings = snapshot.detectors.scan_body(request.body) if snapshot.detectors else {}
    limits = None
    if spec.include_limits and state is not None:
        buckets = snapshot.state_rules.buckets_for(caller, request.model, None)
        if buckets:
            limits = limits_document(await state.limit_status(buckets))
    doc = build_input(
        request,
        caller,
        host=request.headers.get(":authority", ""),
        profile=ask.profile.value if ask.profile else None,
        classification=(
            {
                "category": classification.category,
                "tier": classification.tier,
                "score": classification.score,
                "scores": dict(classification.scores),
            }
            if classification is not None
            else None
        ),
        limits=limits,
        findings=findings,
        include_raw_body=False,
        redact=spec.redact_headers,
    )
    return await snapshot.policy.evaluate(doc)


def constraints_from(request: ParsedRequest, policy: PolicyResult | None) -> Constraints:
    if policy is None:
        return Constraints(
            capabilities=request.needed_capabilities, tokens_needed=request.total_tokens_needed
        )
    return Constraints(
        allowed_backends=policy.allowed_backends,
        denied_backends=policy.denied_backends,
        allowed_models=policy.allowed_models,
        require_in_cluster=policy.require_in_cluster,
        max_tier=Tier(policy.max_tier) if policy.max_tier else None,
        capabilities=request.needed_capabilities,
        tokens_needed=request.total_tokens_needed,
    )


def no_backend_error(selection: Selection, request: ParsedRequest) -> ApiError:
    reasons = set(selection.excluded.values())
    if reasons and all(r.startswith("context window") for r in reasons):
        return ApiError(
            400,
            f"This request needs about {request.total_tokens_needed} tokens, more than the "
            "context window of any backend it may use.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        )
    if reasons and all(r.startswith("lacks") for r in reasons):
        return ApiError(
            400,
            "No backend available to this request supports "
            + ", ".join(sorted(request.needed_capabilities))
            + ".",
            "invalid_request_error",
            "unsupported_capability",
        )
    if reasons and all("policy" in r or r in ("not in-cluster",) for r in reasons):
        return ApiError(
            403,
            "Policy allows no backend for this request.",
            "permission_error",
            "no_allowed_backend",
        )
    return ApiError(503, "No backend can serve this request now.", "server_error", "no_backend")
