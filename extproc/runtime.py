"""Process-wide state of a running RouteIQ: the current snapshot and shared services.

One ``Runtime`` per server process (ext_proc server, Kong plugin server), created by
the adapter and passed down explicitly, never a module-level singleton. Swapping
``snapshot`` is a single reference assignment; readers take the reference once per
request and keep it. Adapters call ``decide`` and ``on_response`` and nothing below.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from extproc.api.openai import ParsedRequest
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Decision


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

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        """Build the first snapshot from ``settings.config_path`` (raises ``ConfigError``)."""
        return cls(settings=settings, snapshot=build_snapshot(settings.config_path))

    async def decide(self, request: ParsedRequest, snapshot: Snapshot | None = None) -> Decision:
        """Decide under ``snapshot`` (the one the request pinned) or the current one."""
        return await decide(request, snapshot or self.snapshot)

    async def on_response(
        self,
        decision: Decision,
        status: int,
        usage: dict[str, int] | None,
    ) -> None:
        """Account for the upstream's answer: health, usage against budgets, logs."""

    async def close(self) -> None:
        self.snapshot.close()
