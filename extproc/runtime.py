"""Process-wide state of a running RouteIQ: the current snapshot and shared services.

One ``Runtime`` per server process (ext_proc server, Kong plugin server), created by
the adapter and passed down explicitly, never a module-level singleton. Swapping
``snapshot`` is a single reference assignment; readers take the reference once per
request and keep it. Adapters call ``decide``, ``record_status`` and ``record_usage``
(or ``on_response`` for both) and nothing below: metrics, spans and decision log
lines are produced here, so every adapter reports the same way.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from extproc.api.openai import ParsedRequest
from extproc.api.usage import Usage
from extproc.cache.capture import Captured
from extproc.cache.service import AnswerCache
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.config.watcher import fingerprint
from extproc.cost.accountant import CostBook
from extproc.decide import decide
from extproc.decision import Decision
from extproc.decision_log import DecisionLog
from extproc.pipeline.offload import Offload, ThreadOffload
from extproc.state import StateStore, StateUnavailable, build_state_store
from extproc.state.sampling import StatusSampler
from extproc.telemetry import DecisionRecord, Telemetry

# Decisions waiting for their response's usage (bounded: a lost response must not leak).
_PENDING_MAX = 10_000


@dataclass(slots=True)
class Stats:
    """Plain counters for the few events that must never go unnoticed (also in metrics)."""

    errors: Counter[str] = field(default_factory=Counter)

    def count_error(self, kind: str) -> None:
        """Counter only; prefer ``Runtime.count_error``, which also feeds the metric."""
        self.errors[kind] += 1


@dataclass(slots=True)
class Runtime:
    settings: Settings
    snapshot: Snapshot
    state: StateStore | None = None
    telemetry: Telemetry | None = None
    decision_log: DecisionLog | None = None
    stats: Stats = field(default_factory=Stats)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("routeiq"))
    offload: Offload | None = None
    _pending: OrderedDict[str, DecisionRecord] = field(default_factory=OrderedDict)
    _policy_down: bool = False
    _degraded_logged: dict[str, float] = field(default_factory=dict)
    costs: CostBook = field(default_factory=CostBook)
    cache: AnswerCache | None = None
    sampler: StatusSampler = field(default_factory=StatusSampler)
    config_seen: str | None = None  # the config's fingerprint before the first build

    @classmethod
    def create(cls, settings: Settings, *, instance: str | None = None) -> Runtime:
        """Build the first snapshot (raises ``ConfigError``), state store and telemetry."""
        log = logging.getLogger("routeiq")
        # Before the build: an edit landing while it runs is then seen by the watcher.
        seen = fingerprint(settings.config_path)
        snapshot = build_snapshot(settings.config_path)
        telemetry = Telemetry.from_settings(settings, instance=instance)
        telemetry.set_config_version(snapshot.version)
        decision_log = DecisionLog.from_settings(settings)
        telemetry.watch_dropped(decision_log.dropped)
        state = build_state_store(settings, logger=log)
        telemetry.watch_state(lambda: state.stats)
        offload = ThreadOffload(
            settings.analysis_threads,
            settings.analysis_timeout_ms / 1000,
            settings.analysis_max_pending,
        )
        cache = AnswerCache(settings, logger=log)
        cache.export(telemetry.meter_provider.get_meter("routeiq.cache"))
        return cls(
            settings=settings,
            snapshot=snapshot,
            state=state,
            telemetry=telemetry,
            decision_log=decision_log,
            log=log,
            offload=offload,
            cache=cache,
            config_seen=seen,
        )

    def count_error(self, kind: str) -> None:
        self.stats.count_error(kind)
        if self.telemetry is not None:
            self.telemetry.record_error(kind)

    async def decide(
        self,
        request: ParsedRequest,
        snapshot: Snapshot | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Decision:
        """Decide under ``snapshot`` (the one the request pinned) or the current one,
        and report it (metrics, span, decision log)."""
        snap = snapshot or self.snapshot
        started = time.perf_counter()
        decision = await decide(
            request, snap, state=self.state, offload=self.offload, cache=self.cache
        )
        self.observe(decision, request, time.perf_counter() - started, snap, headers)
        return decision

    def observe(
        self,
        decision: Decision,
        request: ParsedRequest | None,
        elapsed_s: float,
        snapshot: Snapshot,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Report a decision made here or by an adapter (fail-open)."""
        down = decision.policy_unavailable
        if down is not self._policy_down:  # one log line per outage, not per request
            self._policy_down = down
            if down:
                assert decision.policy is not None
                self.log.warning(
                    "%s; applying policy failureMode=%s",
                    decision.policy.reason or "policy engine unavailable",
                    snapshot.spec.policy.failure_mode,
                )
            else:
                self.log.warning("policy engine answering again")
        for kind in decision.degraded:
            self._degraded(kind)
        if decision.error is not None and decision.error.code == "policy_config_error":
            self.count_error("policy_config_error")
        if self.telemetry is not None:
            record = self.telemetry.record_decision(
                decision,
                request,
                elapsed_s,
                headers
                if headers is not None
                else (request.headers if request is not None else None),
                snapshot=snapshot,
            )
            if decision.accounting:
                self._pending[decision.id] = record
                if len(self._pending) > _PENDING_MAX:
                    self._pending.popitem(last=False)
        if self.decision_log is not None:
            self.decision_log.log_decision(decision, request, elapsed_s)

    def _degraded(self, kind: str) -> None:
        """Count work skipped to protect the loop; log the first of each kind per minute."""
        self.count_error(kind)
        now = time.monotonic()
        if now - self._degraded_logged.get(kind, -60.0) >= 60.0:
            self._degraded_logged[kind] = now
            self.log.warning(
                "%s: a request was routed without its analysis (see routeiq_errors_total)", kind
            )

    def reads_status(self, snapshot: Snapshot) -> bool:
        """Whether a request routed under ``snapshot`` should read its upstream status
        for backend health (``health.sampleEvery``); asked once per routed request."""
        rule = snapshot.state_rules.health
        return (
            self.state is not None and rule.enabled and self.sampler.wants(rule, time.monotonic())
        )

    async def record_status(self, decision: Decision, status: int) -> None:
        """The upstream answered ``status`` (0: no answer): feeds backend health."""
        rule = self.snapshot.state_rules.health
        if self.state is None or decision.backend is None or not rule.enabled:
            return
        self.sampler.saw(rule, status, time.monotonic())
        try:
            await self.state.record_outcome(decision.backend, status, rule)
        except StateUnavailable:
            self.count_error("state_unavailable_health")

    async def record_usage(self, decision: Decision, usage: Usage, status: int = 200) -> None:
        """Real usage is known: reconcile the budget charge, report tokens and cost."""
        record = self._pending.pop(decision.id, None)
        cost = self.costs.price(decision, usage, self.snapshot)
        if self.telemetry is not None:
            if record is not None:
                self.telemetry.record_usage(record, usage, status=status)
            if cost is not None:
                self.telemetry.record_cost(cost)
        if self.decision_log is not None:
            self.decision_log.log_usage(decision.id, usage, cost)
        if self.state is None or decision.reservation is None:
            return
        try:
            await self.state.reconcile(decision.reservation, usage.total_tokens)
        except StateUnavailable:
            self.count_error("state_unavailable_reconcile")

    async def store_answer(self, decision: Decision, answer: Captured | str) -> None:
        """A cache miss's response, collected by the adapter (or why it was not): stored
        when it qualifies. Never raises: the response is already on its way."""
        ticket = decision.cache.ticket if decision.cache is not None else None
        if self.cache is None or ticket is None or decision.backend is None:
            return
        await self.cache.save(ticket, answer, decision.backend)

    async def on_response(self, decision: Decision, status: int, usage: Usage | None) -> None:
        """Both at once, for adapters that see the response in one piece (Kong)."""
        await self.record_status(decision, status)
        if usage is not None:
            await self.record_usage(decision, usage, status)
        else:
            self._pending.pop(decision.id, None)

    def swap(self, snapshot: Snapshot) -> None:
        """Serve ``snapshot`` from now on (hot reload).

        The new snapshot's objects are moved out of the collector's reach, as at start-up
        (``gc.freeze``): a full collection would otherwise walk them on the serving loop.
        The old snapshot is still freed by reference counting once its last stream ends.
        The router keeps the old one's traffic window when its needs still apply
        (``Router.continuing``): a reload of an unrelated part does not reset the bars.
        """
        router = snapshot.router
        if router is not None:
            kept = router.continuing(self.snapshot.router)
            if kept is not router:
                snapshot = replace(snapshot, router=kept)
        self.snapshot = snapshot
        gc.freeze()

    def reloaded(self, ok: bool) -> None:
        if not ok:
            self.count_error("config_reload_rejected")
        if self.telemetry is not None:
            self.telemetry.record_reload(ok, self.snapshot.version if ok else None)

    async def ready(self) -> dict[str, bool]:
        """Readiness: engines built and, when configured, shared state reachable."""
        checks = dict(self.snapshot.ready)
        # Fail-open keeps serving without Redis: then Redis must not make the pod unready.
        if self.state is not None and self.settings.state_failure_mode == "closed":
            checks["state"] = await self.state.ping()
        return checks

    async def close(self) -> None:
        self.snapshot.close()
        if self.offload is not None:
            self.offload.close()
        if self.cache is not None:
            await self.cache.aclose()
        if self.state is not None:
            await self.state.aclose()
        if self.decision_log is not None:
            self.decision_log.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
