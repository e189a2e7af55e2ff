"""The one place where RouteIQ answers its three questions, in order.

1. What was asked: an explicit model (goes to a backend that serves it) or a profile
   (``auto``, ``eco``...), which is classified.
2. May it pass: policy (Rego) over the request, its caller and its classification.
3. Which backend: the selector, under the policy's constraints, capabilities, context
   window, health and session affinity; then the caller's budgets are charged for it.

No gRPC, HTTP or Kong here: adapters turn a ``Decision`` into proxy instructions.
Shared state (budgets, affinity, health) comes in as a ``StateStore``; ``None`` means
the deployment keeps none.
"""

from __future__ import annotations

import os
import time
from typing import Any

from extproc.api.errors import ApiError
from extproc.api.identity import Caller, identify
from extproc.api.openai import ParsedRequest
from extproc.api.usage import ensure_stream_usage
from extproc.config.schema import Tier
from extproc.config.snapshot import Snapshot
from extproc.decide_parts import (
    Ask,
    classification_doc,
    constraints_from,
    evaluate_policy,
    no_backend_error,
    resolve,
)
from extproc.decision import Decision, Outcome
from extproc.routing.profiles import Profile
from extproc.routing.selector import select, target_tier
from extproc.state import StateStore, StateUnavailable, estimated_tokens, rate_limit_error
from extproc.state.ratelimit import ratelimit_headers

BACKEND_HEADER = "x-routeiq-backend"
DECISION_ID_HEADER = "x-routeiq-decision-id"
CATEGORY_HEADER = "x-routeiq-category"
TIER_HEADER = "x-routeiq-tier"
PROFILE_OUT_HEADER = "x-routeiq-routed-profile"


def new_decision_id() -> str:
    return os.urandom(8).hex()


def _denied(
    did: str,
    snapshot: Snapshot,
    request: ParsedRequest,
    error: ApiError,
    explain: dict[str, Any],
    rule_ids: tuple[str, ...] = (),
) -> Decision:
    return Decision(
        id=did,
        outcome=Outcome.DENIED,
        config_version=snapshot.version,
        requested_model=request.model,
        error=error,
        reasons=(error.code or error.type,),
        rule_ids=rule_ids,
        response_headers=((DECISION_ID_HEADER, did),),
        prompt_tokens=request.prompt_tokens,
        explain=explain,
    )


async def decide(
    request: ParsedRequest,
    snapshot: Snapshot,
    *,
    state: StateStore | None = None,
    decision_id: str | None = None,
) -> Decision:
    """Decide where ``request`` goes under ``snapshot``; never raises for bad input.

    Refusals come back as a ``DENIED`` decision carrying an OpenAI-style ``ApiError``
    (404 unknown model, 403 policy, 429 budget, 400 nothing fits, 503 state down and
    fail-closed). Exceptions escape only for bugs; adapters apply the failure mode.
    """
    started = time.perf_counter()
    did = decision_id or new_decision_id()
    spec = snapshot.spec
    explain: dict[str, Any] = {"requested_model": request.model}
    try:
        caller: Caller = identify(request.headers, spec.identity, request.user, snapshot.jwt)
    except ApiError as error:  # a bearer token that does not verify
        return _denied(did, snapshot, request, error, explain)
    explain["caller"] = caller.as_dict()

    ask = resolve(snapshot, request.model, request.headers)
    if isinstance(ask, ApiError):
        return _denied(did, snapshot, request, ask, explain)

    classification = None
    router = snapshot.router
    if ask.profile is not None and ask.profile.classifies and router is not None:
        sticky = request.headers.get(router.sticky_by) if router.sticky_by else None
        classification = router.classify(request, sticky or caller.user)
        explain["classification"] = classification_doc(classification)

    # -- may it pass? ---------------------------------------------------------------
    policy = None
    if snapshot.policy is not None:
        try:
            policy = await evaluate_policy(snapshot, request, caller, ask, classification, state)
        except StateUnavailable as exc:
            return _denied(did, snapshot, request, exc, explain)
        explain["policy"] = policy.explain()
        if not policy.allowed:
            return _denied(did, snapshot, request, policy.api_error(), explain, policy.rule_ids)
        if policy.force_model or (policy.profile and ask.profile is not None):
            forced = resolve(snapshot, policy.force_model or policy.profile or "", {})
            if isinstance(forced, ApiError):
                raise ValueError(f"policy named an unknown model or profile: {forced.message}")
            needs_class = forced.profile is not None and forced.profile.classifies
            if needs_class and classification is None and router is not None:
                classification = router.classify(request, caller.user)
                explain["classification"] = classification_doc(classification)
            ask = forced

    # -- which backend? ---------------------------------------------------------------
    profile = ask.profile
    if profile is None:
        explain["route"] = "explicit model"
        target, rank_profile = Tier.PREMIUM, Profile.PREMIUM  # strongest server of the model
    else:
        classified = Tier(classification.tier) if classification is not None else None
        target, rank_profile = target_tier(profile, classified), profile
        explain["profile"] = profile.value
    explain["target_tier"] = target.value

    rules = snapshot.state_rules
    unhealthy: frozenset[str] = frozenset()
    pinned: str | None = None
    session = None
    try:
        if state is not None:
            if rules.health.enabled:
                unhealthy = await state.cooling_backends()
            session = rules.session_key(request, caller)
            if session is not None:
                pinned = await state.get_affinity(session, rules.affinity_ttl_s)
    except StateUnavailable as exc:
        return _denied(did, snapshot, request, exc, explain)

    selection = select(
        ask.candidates,
        constraints_from(request, policy),
        target,
        rank_profile,
        request.prompt_tokens,
        request.max_tokens,
        unhealthy,
    )
    explain["excluded"] = dict(selection.excluded)
    ranked = selection.ranked
    if not ranked:
        return _denied(did, snapshot, request, no_backend_error(selection, request), explain)
    if pinned is not None and pinned != ranked[0].name:
        for b in ranked:
            if b.name == pinned:
                ranked = (b, *(x for x in ranked if x is not b))
                explain["affinity"] = f"session pinned to {pinned}"
                break
    backend = ranked[0]

    # -- budgets, charged for the chosen backend --------------------------------------
    reservation = None
    limit_headers: tuple[tuple[str, str], ...] = ()
    model_name = ask.public_names.get(backend.name, request.model)
    buckets = rules.buckets_for(caller, model_name, backend.name)
    if buckets and state is not None:
        tokens = estimated_tokens(request)
        try:
            charged = await state.consume(buckets, tokens)
        except StateUnavailable as exc:
            return _denied(did, snapshot, request, exc, explain)
        if not charged.allowed:
            explain["budget"] = {"refused_by": list(charged.refused_by)}
            return _denied(did, snapshot, request, rate_limit_error(charged, tokens), explain)
        reservation = charged.reservation
        limit_headers = ratelimit_headers(charged.statuses)
    try:
        if session is not None and state is not None and pinned != backend.name:
            await state.set_affinity(session, backend.name, rules.affinity_ttl_s)
    except StateUnavailable:
        pass  # the request is already admitted; a lost pin only costs cache warmth

    # -- how does the proxy get there? --------------------------------------------------
    upstream_model = ask.upstream_models[backend.name]
    overrides: dict[str, Any] = {}
    if upstream_model != request.model:
        overrides["model"] = upstream_model
    accounting = spec.usage_accounting == "always" or (
        spec.usage_accounting == "auto" and reservation is not None and reservation.tokens > 0
    )
    strip_usage = False
    if accounting and request.stream:
        patched, strip_usage = ensure_stream_usage(request.body, request.endpoint)
        if strip_usage:
            overrides["stream_options"] = patched["stream_options"]

    response_headers: list[tuple[str, str]] = [*limit_headers]
    rh = spec.response_headers
    if rh.backend:
        response_headers.append((BACKEND_HEADER, backend.name))
    if rh.decision_id:
        response_headers.append((DECISION_ID_HEADER, did))
    if classification is not None:
        response_headers += [
            (CATEGORY_HEADER, classification.category),
            (TIER_HEADER, classification.tier),
        ]
    if profile is not None:
        response_headers.append((PROFILE_OUT_HEADER, profile.value))
    upstream_headers = [(BACKEND_HEADER, backend.name), (DECISION_ID_HEADER, did)]
    if classification is not None:  # also upstream: a proxy may copy them to the client
        upstream_headers += [
            (CATEGORY_HEADER, classification.category),
            (TIER_HEADER, classification.tier),
        ]
    if policy is not None:
        upstream_headers += policy.headers
        response_headers += policy.response_headers
    explain["decide_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return Decision(
        id=did,
        outcome=Outcome.ROUTED,
        config_version=snapshot.version,
        requested_model=request.model,
        profile=profile.value if profile else None,
        backend=backend.name,
        cluster=backend.cluster,
        upstream_model=upstream_model,
        body_overrides=overrides,
        fallbacks=tuple(b.name for b in ranked[1:]),
        category=classification.category if classification else None,
        tier=backend.tier.value,
        strategy=classification.strategy if classification else None,
        variant=classification.variant if classification else None,
        reasons=_reasons(ask, explain),
        rule_ids=policy.rule_ids if policy is not None else (),
        upstream_headers=tuple(upstream_headers),
        response_headers=tuple(response_headers),
        accounting=accounting,
        strip_usage_chunk=strip_usage,
        prompt_tokens=request.prompt_tokens,
        reservation=reservation,
        explain=explain,
    )


def _reasons(ask: Ask, explain: dict[str, Any]) -> tuple[str, ...]:
    out = ["explicit model" if ask.profile is None else f"profile {ask.profile.value}"]
    if "classification" in explain:
        c = explain["classification"]
        out.append(f"category {c['category']} needs tier {c['tier']}")
    if "affinity" in explain:
        out.append(explain["affinity"])
    return tuple(out)


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
