"""The one place where RouteIQ answers its three questions, in order.

1. What was asked: an explicit model (goes to a backend that serves it) or a profile
   (``auto``, ``eco``...), which is classified.
2. May it pass: policy (Rego) over the request, its caller and its classification;
   then budgets.
3. Which backend: the selector, under the policy's constraints, capabilities, context
   window, health and affinity.

No gRPC, HTTP or Kong here: adapters turn a ``Decision`` into proxy instructions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from extproc.api.errors import ApiError, model_not_found
from extproc.api.identity import Caller, identify
from extproc.api.openai import ParsedRequest
from extproc.config.schema import Backend, Tier
from extproc.config.snapshot import Snapshot
from extproc.decision import Decision, Outcome
from extproc.routing.profiles import Profile, profile_from_header, profile_from_model
from extproc.routing.selector import Constraints, Selection, select, target_tier

BACKEND_HEADER = "x-routeiq-backend"
DECISION_ID_HEADER = "x-routeiq-decision-id"


def new_decision_id() -> str:
    return os.urandom(8).hex()


@dataclass(frozen=True, slots=True)
class _Ask:
    """What the client asked for, after aliases and profiles are resolved."""

    profile: Profile | None
    candidates: tuple[Backend, ...]
    upstream_models: Mapping[str, str]  # backend name -> model name the backend knows


def _resolve(request: ParsedRequest, snapshot: Snapshot, model: str) -> _Ask | ApiError:
    routes = snapshot.models.get(model)
    if routes is not None:
        return _Ask(
            None,
            tuple(r.backend for r in routes),
            {r.backend.name: r.model.upstream_name for r in routes},
        )
    profile = profile_from_model(model)
    if profile is None:
        return model_not_found(model)
    if profile is Profile.AUTO:
        profile = profile_from_header(request.headers) or profile
    backends = snapshot.spec.backends
    return _Ask(profile, backends, {b.name: b.default_model.upstream_name for b in backends})


def _no_backend(selection: Selection, request: ParsedRequest) -> ApiError:
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
    if reasons and all("policy" in r or r == "not in-cluster" for r in reasons):
        return ApiError(
            403,
            "Policy allows no backend for this request.",
            "permission_error",
            "no_allowed_backend",
        )
    return ApiError(503, "No backend can serve this request now.", "server_error", "no_backend")


def _denied(
    decision_id: str,
    snapshot: Snapshot,
    request: ParsedRequest,
    error: ApiError,
    explain: dict[str, Any],
) -> Decision:
    return Decision(
        id=decision_id,
        outcome=Outcome.DENIED,
        config_version=snapshot.version,
        requested_model=request.model,
        error=error,
        reasons=(error.code or error.type,),
        response_headers=((DECISION_ID_HEADER, decision_id),),
        explain=explain,
    )


async def decide(
    request: ParsedRequest,
    snapshot: Snapshot,
    *,
    decision_id: str | None = None,
) -> Decision:
    """Decide where ``request`` goes, under ``snapshot``; never raises for bad input.

    Refusals come back as a ``DENIED`` decision carrying an OpenAI-style ``ApiError``.
    """
    started = time.perf_counter()
    did = decision_id or new_decision_id()
    spec = snapshot.spec
    caller: Caller = identify(request.headers, spec.identity, request.user)
    explain: dict[str, Any] = {"caller": caller.as_dict(), "requested_model": request.model}

    ask = _resolve(request, snapshot, request.model)
    if isinstance(ask, ApiError):
        return _denied(did, snapshot, request, ask, explain)

    classification = None
    if ask.profile is not None and ask.profile.classifies and snapshot.router is not None:
        classification = snapshot.router.classify(request, caller.user or caller.api_key_hash)
        explain["classification"] = {
            "category": classification.category,
            "tier": classification.tier,
            "score": classification.score,
            "scores": dict(classification.scores),
            "strategy": classification.strategy,
            "variant": classification.variant,
        }

    profile = ask.profile
    constraints = Constraints(
        capabilities=request.needed_capabilities, tokens_needed=request.total_tokens_needed
    )
    if profile is None:
        explain["route"] = "explicit model"
        target = Tier.PREMIUM  # among backends serving the named model, prefer the strongest
        rank_profile = Profile.PREMIUM
    else:
        classified = Tier(classification.tier) if classification is not None else None
        target = target_tier(profile, classified)
        rank_profile = profile
        explain["profile"] = profile.value
    explain["target_tier"] = target.value

    selection = select(
        ask.candidates,
        constraints,
        target,
        rank_profile,
        request.prompt_tokens,
        request.max_tokens,
    )
    explain["excluded"] = dict(selection.excluded)
    backend = selection.primary
    if backend is None:
        return _denied(did, snapshot, request, _no_backend(selection, request), explain)

    upstream_model = ask.upstream_models[backend.name]
    explain["decide_ms"] = round((time.perf_counter() - started) * 1000, 3)
    response_headers: list[tuple[str, str]] = []
    rh = spec.response_headers
    if rh.backend:
        response_headers.append((BACKEND_HEADER, backend.name))
    if rh.decision_id:
        response_headers.append((DECISION_ID_HEADER, did))
    return Decision(
        id=did,
        outcome=Outcome.ROUTED,
        config_version=snapshot.version,
        requested_model=request.model,
        profile=profile.value if profile else None,
        backend=backend.name,
        cluster=backend.cluster,
        upstream_model=upstream_model,
        rewrite_body=upstream_model != request.model,
        fallbacks=tuple(b.name for b in selection.ranked[1:]),
        category=classification.category if classification else None,
        tier=backend.tier.value,
        strategy=classification.strategy if classification else None,
        variant=classification.variant if classification else None,
        reasons=("explicit model",) if profile is None else (f"profile {profile.value}",),
        upstream_headers=((BACKEND_HEADER, backend.name), (DECISION_ID_HEADER, did)),
        response_headers=tuple(response_headers),
        explain=explain,
    )


def fail_open_decision(snapshot: Snapshot, requested_model: str, reason: str) -> Decision:
    """Where a request goes when deciding failed and the operator chose fail-open."""
    did = new_decision_id()
    backend = snapshot.default_backend
    return Decision(
        id=did,
        outcome=Outcome.FAILED_OPEN,
        config_version=snapshot.version,
        requested_model=requested_model,
        backend=backend.name,
        cluster=backend.cluster,
        reasons=(reason,),
        upstream_headers=((BACKEND_HEADER, backend.name), (DECISION_ID_HEADER, did)),
        response_headers=((BACKEND_HEADER, backend.name), (DECISION_ID_HEADER, did)),
    )
