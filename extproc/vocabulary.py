"""The shared vocabulary every layer speaks: tiers and failure modes.

A leaf module: it imports nothing from RouteIQ, so the config schema, the routing spec,
the selector and policies can all use one definition (header names live in the leaf
module ``extproc.headers``).
"""

from __future__ import annotations

import enum
from typing import Literal

# Ordered from cheapest to strongest; profiles and policies cap or floor by position.
TIERS: tuple[str, ...] = ("free", "eco", "standard", "premium")
# The same names as a type, for config fields that hold a tier.
TierName = Literal["free", "eco", "standard", "premium"]


class Tier(enum.StrEnum):
    FREE = "free"
    ECO = "eco"
    STANDARD = "standard"
    PREMIUM = "premium"

    @property
    def rank(self) -> int:
        # A dict lookup by the member itself (a str): ``self.value`` goes through the
        # enum descriptor, which rankers pay several times per request.
        return _RANKS[self]


_RANKS: dict[str, int] = {name: i for i, name in enumerate(TIERS)}


class FailureMode(enum.StrEnum):
    """What a request gets when a dependency of the decision fails."""

    OPEN = "open"  # let it through on the default backend, log and count it
    CLOSED = "closed"  # refuse it with a clear error
