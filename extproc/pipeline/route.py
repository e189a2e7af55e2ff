"""Route stage: which backend, under constraints, health and session affinity.

Reads shared state (cooling backends, the session's pinned backend), runs the
selector, and moves a pinned backend to the front when it is among the usable ones.
When nothing is usable the refusal says why, with a status that tells an OpenAI
client whether retrying can help: the request's own needs (capabilities, context,
policy constraints) are 4xx; only a temporary state is 503.
"""

from __future__ import annotations

from dataclasses import dataclass

from extproc.api.errors import ApiError
from extproc.api.identity import Caller
from extproc.api.openai import ParsedRequest
from extproc.config.backend import Backend
from extproc.config.snapshot import Snapshot
from extproc.pipeline.ask import Ask
from extproc.pipeline.refusal import Refusal
from extproc.policy import PolicyResult
from extproc.routing.profiles import Profile
from extproc.routing.rankers import DEFAULT_OUTPUT_TOKENS, RankContext
from extproc.routing.router import Classification
from extproc.routing.selector import Constraints, Selection, select, target_tier
from extproc.state.types import StateStore, StateUnavailable
from extproc.vocabulary import Tier

# Exclusions that hold whatever the moment: retrying the same request cannot help.
_PERMANENT = (
    "lacks",
    "context window",
    "not allowed",
    "denied by policy",
    "serves no model",
    "not in-cluster",
    "tier ",
)


@dataclass(frozen=True, slots=True)
class Route:
    """The ranked backends (first is chosen) and how they were found."""

    ranked: tuple[Backend, ...]
    target: Tier
    excluded: dict[str, str]
    session: str | None
    pinned: str | None
    affinity_applied: bool
    expected_costs: dict[str, float]  # ranked backend -> USD expected for this request

    @property
    def backend(self) -> Backend:
        return self.ranked[0]


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
    """Why nothing can serve the request, as the error an OpenAI client understands."""
    reasons = set(selection.excluded.values())
    if not reasons or not all(r.startswith(_PERMANENT) for r in reasons):
        return ApiError(503, "No backend can serve this request now.", "server_error", "no_backend")
    if all(r.startswith("context window") for r in reasons):
        return ApiError(
            400,
            f"This request needs about {request.total_tokens_needed} tokens, more than the "
            "context window of any backend it may use.",
            "invalid_request_error",
            "context_length_exceeded",
            "messages",
        )
    if all(r.startswith("lacks") for r in reasons):
        return ApiError(
            400,
            "No backend available to this request supports "
            + ", ".join(sorted(request.needed_capabilities))
            + ".",
            "invalid_request_error",
            "unsupported_capability",
        )
    if not any(r.startswith(("lacks", "context window")) for r in reasons):
        return ApiError(
            403,
            "Policy allows no backend for this request.",
            "permission_error",
            "no_allowed_backend",
        )
    why = "; ".join(sorted(f"{name}: {r}" for name, r in selection.excluded.items()))
    return ApiError(
        400,
        f"No backend this request may use can serve it ({why}).",
        "invalid_request_error",
        "unsatisfiable_request",
    )


def tier_needed(ask: Ask, classification: Classification | None) -> tuple[Tier, Profile]:
    """The target tier and the profile that ranks backends (explicit model: the
    strongest server of that model)."""
    if ask.profile is None:
        return Tier.PREMIUM, Profile.PREMIUM
    classified = Tier(classification.tier) if classification is not None else None
    learned = classification is not None and classification.quality is not None
    return target_tier(ask.profile, classified, learned), ask.profile


async def _shared_view(
    snapshot: Snapshot, request: ParsedRequest, caller: Caller, state: StateStore | None
) -> tuple[frozenset[str], str | None, str | None]:
    """Cooling backends, the session key and its pinned backend."""
    if state is None:
        return frozenset(), None, None
    rules = snapshot.state_rules
    try:
        unhealthy = await state.cooling_backends() if rules.health.enabled else frozenset()
        session = rules.session_key(request, caller)
        pinned = None
        if session is not None:
            pinned = await state.get_affinity(session, rules.affinity_ttl_s)
    except StateUnavailable as exc:
        raise Refusal(exc) from None
    return frozenset(unhealthy), session, pinned


async def route(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller,
    ask: Ask,
    classification: Classification | None,
    policy: PolicyResult | None,
    state: StateStore | None,
) -> Route:
    """Rank the usable backends; refuse when none can serve the request."""
    target, rank_profile = tier_needed(ask, classification)
    unhealthy, session, pinned = await _shared_view(snapshot, request, caller, state)
    context = RankContext(
        target, rank_profile, request.prompt_tokens, request.max_tokens or DEFAULT_OUTPUT_TOKENS
    )
    selection = select(
        ask.candidates, constraints_from(request, policy), context, unhealthy, snapshot.ranker
    )
    ranked = selection.ranked
    if not ranked:
        raise Refusal(no_backend_error(selection, request))
    applied = False
    if pinned is not None and pinned != ranked[0].name:
        for b in ranked:
            if b.name == pinned:
                ranked = (b, *(x for x in ranked if x is not b))
                applied = True
                break
    costs = {b.name: context.expected_cost(b) for b in ranked}
    return Route(ranked, target, dict(selection.excluded), session, pinned, applied, costs)
