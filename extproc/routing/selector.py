"""The selector: from the backends policy allows, pick one (and ordered fallbacks).

Filters first (policy constraints, capabilities, context window, health), then ranks
the usable backends with the configured ranker (``extproc.routing.rankers``; by
default: how well a backend's tier matches the tier the request needs, then the
expected cost of this request). Rankings are deterministic, so replicas agree
without talking.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from extproc.config.backend import Backend
from extproc.routing.profiles import Profile
from extproc.routing.rankers import RankContext, Ranker, tier_then_cost
from extproc.vocabulary import TIERS, Tier


@dataclass(frozen=True, slots=True)
class Constraints:
    """What policy (and the request itself) imposes on the choice of backend."""

    allowed_backends: frozenset[str] | None = None
    denied_backends: frozenset[str] = frozenset()
    allowed_models: frozenset[str] | None = None
    require_in_cluster: bool = False
    max_tier: Tier | None = None
    capabilities: frozenset[str] = frozenset()
    tokens_needed: int = 0


@dataclass(frozen=True, slots=True)
class Selection:
    ranked: tuple[Backend, ...]
    excluded: dict[str, str] = field(default_factory=dict)  # backend -> why it was dropped

    @property
    def primary(self) -> Backend | None:
        return self.ranked[0] if self.ranked else None


def _exclusion(backend: Backend, c: Constraints) -> str | None:
    if c.allowed_backends is not None and backend.name not in c.allowed_backends:
        return "not allowed by policy"
    if backend.name in c.denied_backends:
        return "denied by policy"
    if c.allowed_models is not None and not any(m.name in c.allowed_models for m in backend.models):
        return "serves no model the policy allows"
    if c.require_in_cluster and not backend.in_cluster:
        return "not in-cluster"
    if c.max_tier is not None and backend.tier.rank > c.max_tier.rank:
        return f"tier {backend.tier} above policy max {c.max_tier}"
    missing = c.capabilities - backend.capabilities
    if missing:
        return f"lacks {', '.join(sorted(missing))}"
    if c.tokens_needed > backend.context_window:
        return f"context window {backend.context_window} < {c.tokens_needed} tokens"
    return None


def target_tier(profile: Profile, classified: Tier | None, learned: bool = False) -> Tier:
    """The tier a request should land on, given its profile and classification.

    ``learned``: the classification came from the cost-quality rule at this profile's
    own operating point (``eco`` is a point on the same curve, which may send a few
    requests up), so its tier stands; otherwise ``eco`` caps the category's tier at eco.
    """
    if profile is Profile.FREE:
        return Tier.FREE
    if profile in (Profile.PREMIUM, Profile.REASONING):
        return Tier.PREMIUM
    tier = classified or Tier.STANDARD
    if profile is Profile.ECO and not learned:
        return Tier(TIERS[max(Tier.FREE.rank, min(tier.rank, Tier.ECO.rank))])
    return tier


def select(
    backends: Sequence[Backend],
    constraints: Constraints,
    context: RankContext,
    unhealthy: Collection[str] = (),
    ranker: Ranker = tier_then_cost,
) -> Selection:
    """Filter the backends, then order the usable ones with ``ranker``; an empty
    ``ranked`` means none can serve the request.

    A backend cooling down after failures is skipped unless every candidate is cooling,
    in which case they are all kept: trying a struggling backend beats failing for sure.
    """
    excluded: dict[str, str] = {}
    usable: list[Backend] = []
    for b in backends:
        why = _exclusion(b, constraints)
        if why is None:
            usable.append(b)
        else:
            excluded[b.name] = why
    if unhealthy:
        healthy = [b for b in usable if b.name not in unhealthy]
        if healthy:
            for b in usable:
                if b.name in unhealthy:
                    excluded[b.name] = "cooling down after failures"
            usable = healthy
    if context.profile is Profile.FREE:
        free = [b for b in usable if b.tier is Tier.FREE]
        usable = free or usable
    return Selection(ranker(usable, context), excluded)
