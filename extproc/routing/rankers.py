"""Backend rankers: the order in which usable backends are tried, by name.

A ranker is a function ``(backends, context) -> ranked tuple``, given only backends that
passed every filter (policy, capabilities, context window, health). Built-in rankers
are in :data:`BUILTIN`; others are loaded by name from the ``routeiq.rankers``
entry-point group (a package declares ``[project.entry-points."routeiq.rankers"]
my-ranker = "my_pkg.module:rank"``) and named in ``spec.ranker``. Rankers must be
deterministic (replicas agree without talking) and cheap: they run per request.

``tier-cost`` (the default): at or above the needed tier first (closest first), then
below it (closest first); among equals the lowest expected cost of this request at
the backend's prices. ``cost``: the cheapest backend whose tier is at or above the
needed tier, then the rest by cost; for deployments whose tiers do not track price.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType

from extproc.config.backend import Backend
from extproc.config.errors import ConfigError
from extproc.routing.profiles import Profile
from extproc.vocabulary import TIERS, Tier

# Output tokens assumed for cost when the request sets no max_tokens.
DEFAULT_OUTPUT_TOKENS = 256
ENTRY_POINT_GROUP = "routeiq.rankers"


@dataclass(frozen=True, slots=True)
class RankContext:
    """What a ranker may use: the needed tier, the profile and this request's size."""

    target: Tier
    profile: Profile
    prompt_tokens: int
    output_tokens: int

    def expected_cost(self, backend: Backend) -> float:
        """USD this request is expected to cost at ``backend``'s prices."""
        return backend.cost.estimate(self.prompt_tokens, self.output_tokens)


Ranker = Callable[[Sequence[Backend], RankContext], tuple[Backend, ...]]


def _reasoning_last(b: Backend, ctx: RankContext) -> int:
    return int(ctx.profile is Profile.REASONING and "reasoning" not in b.capabilities)


def tier_then_cost(backends: Sequence[Backend], ctx: RankContext) -> tuple[Backend, ...]:
    def key(b: Backend) -> tuple[int, int, float, str]:
        gap = b.tier.rank - ctx.target.rank
        distance = gap if gap >= 0 else len(TIERS) - gap
        return (_reasoning_last(b, ctx), distance, ctx.expected_cost(b), b.name)

    return tuple(sorted(backends, key=key))


def cheapest_meeting_tier(backends: Sequence[Backend], ctx: RankContext) -> tuple[Backend, ...]:
    def key(b: Backend) -> tuple[int, int, float, str]:
        below = int(b.tier.rank < ctx.target.rank)
        return (_reasoning_last(b, ctx), below, ctx.expected_cost(b), b.name)

    return tuple(sorted(backends, key=key))


BUILTIN: Mapping[str, Ranker] = MappingProxyType(
    {"tier-cost": tier_then_cost, "cost": cheapest_meeting_tier}
)


def load_ranker(name: str) -> Ranker:
    """The ranker called ``name``: built in, or from the ``routeiq.rankers`` group."""
    builtin = BUILTIN.get(name)
    if builtin is not None:
        return builtin
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
        raise ConfigError(f"unknown ranker '{name}' (known: {', '.join(known)})")
    ranker = found[0].load()
    if not callable(ranker):
        raise ConfigError(f"ranker '{name}' ({found[0].value}) is not callable")
    return ranker  # type: ignore[no-any-return]
