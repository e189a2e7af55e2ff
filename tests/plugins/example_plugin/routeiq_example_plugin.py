"""An example RouteIQ ranker plug-in: prefer in-cluster backends, then the needed tier.

A ranker receives the backends that passed every filter and a ``RankContext``, and
returns them in the order they should be tried. It must be deterministic and cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

from extproc.config.schema import Backend
from extproc.routing.rankers import RankContext, tier_then_cost


def greenest(backends: Sequence[Backend], ctx: RankContext) -> tuple[Backend, ...]:
    ranked = tier_then_cost(backends, ctx)
    return tuple(sorted(ranked, key=lambda b: not b.in_cluster))  # stable: keeps tier order
