"""Process-wide state of a running RouteIQ: the current snapshot and shared services.

One ``Runtime`` per server process (ext_proc server, Kong plugin server), created by
the adapter and passed down explicitly, never a module-level singleton. Swapping
``snapshot`` is a single reference assignment; readers take the reference once per
request and keep it. Adapters call ``decide``, ``record_status`` and ``record_usage``
(or ``on_response`` for both) and nothing below.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from extproc.api.openai import ParsedRequest
from extproc.api.usage import Usage
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Decision
from extproc.state import StateStore, StateUnavailable, build_state_store


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
    state: StateStore | None = None
    stats: Stats = field(default_factory=Stats)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("routeiq"))

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        """Build the first snapshot (raises ``ConfigError``) and the process's state store."""
        log = logging.getLogger("routeiq")
        return cls(
            settings=settings,
            snapshot=build_snapshot(settings.config_path),
            state=build_state_store(settings, logger=log),
            log=log,
        )

    async def decide(self, request: ParsedRequest, snapshot: Snapshot | None = None) -> Decision:
        """Decide under ``snapshot`` (the one the request pinned) or the current one."""
        return await decide(request, snapshot or self.snapshot, state=self.state)

    async def record_status(self, decision: Decision, status: int) -> None:
        """The upstream answered ``status`` (0: no answer): feeds backend health."""
        rule = self.snapshot.state_rules.health
        if self.state is None or decision.backend is None or not rule.enabled:
            return
        try:
            await self.state.record_outcome(decision.backend, status, rule)
        except StateUnavailable:
            self.stats.count_error("state_unavailable_health")

    async def record_usage(self, decision: Decision, usage: Usage) -> None:
        """Real usage is known: reconcile the budget charge made before the request."""
        if self.state is None or decision.reservation is None:
            return
        try:
            await self.state.reconcile(decision.reservation, usage.total_tokens)
        except StateUnavailable:
            self.stats.count_error("state_unavailable_reconcile")

    async def on_response(self, decision: Decision, status: int, usage: Usage | None) -> None:
        """Both at once, for adapters that see the response in one piece (Kong)."""
        await self.record_status(decision, status)
        if usage is not None:
            await self.record_usage(decision, usage)

    async def ready(self) -> dict[str, bool]:
        """Readiness: engines built and, when configured, shared state reachable."""
        checks = dict(self.snapshot.ready)
        # Fail-open keeps serving without Redis: then Redis must not make the pod unready.
        if self.state is not None and self.settings.state_failure_mode == "closed":
            checks["state"] = await self.state.ping()
        return checks

    async def close(self) -> None:
        self.snapshot.close()
        if self.state is not None:
            await self.state.aclose()
