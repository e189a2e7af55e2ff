"""Process-wide state of a running RouteIQ: the current snapshot and shared services.

One ``Runtime`` per server process, created by the CLI and passed down explicitly
(never a module-level singleton). Swapping ``snapshot`` is a single reference
assignment; readers take the reference once per request and keep it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot


@dataclass(slots=True)
class Stats:
    """Plain counters for the few events that must never go unnoticed."""

    errors: Counter[str] = field(default_factory=Counter)

    def count_error(self, kind: str) -> None:
        self.errors[kind] += 1


@dataclass(slots=True)
class Runtime:
    settings: Settings
    snapshot: Snapshot
    stats: Stats = field(default_factory=Stats)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("routeiq"))
