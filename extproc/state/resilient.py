"""``ResilientStateStore``: what requests get while Redis is down, and the way back.

States: *available* (every call goes to Redis) and *unavailable* (entered on the first
failed or timed-out call; one warning logged, ``stats.outages`` counted). While
unavailable no request touches Redis: a background probe PINGs it at most once per
``probe_interval_s``, and the first successful probe returns to *available* (one info
log, ``stats.recoveries``).

While unavailable, per ``mode``:

* ``open``: decision-path calls are answered by a process-local ``MemoryStateStore``
  (budgets then count per replica; affinity and health are local) and never raise.
* ``closed``: decision-path calls (``consume``, ``limit_status``, ``get_affinity``,
  ``cooling_backends``) raise ``StateUnavailable`` (503, OpenAI body, Retry-After).

Response-path calls never raise in either mode, because there is no request left to
refuse: ``record_outcome`` and ``set_affinity`` go to local state, and ``reconcile`` of
a reservation Redis holds is dropped (``stats.reconciles_dropped``). Local
reservations are always reconciled locally. Redis restarts empty (no persistence):
budgets start full again on recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal, TypeVar

from extproc.state.memory import MemoryStateStore
from extproc.state.types import (
    Bucket,
    BucketStatus,
    ConsumeResult,
    HealthRule,
    Reservation,
    StateStats,
    StateStore,
    StoreFailure,
    state_unavailable,
)

T = TypeVar("T")

# What counts as "the shared store is unavailable": the backends' own error type.
FAILURES: tuple[type[BaseException], ...] = (StoreFailure,)


class ResilientStateStore:
    """Wraps the shared store with the operator's failure mode. See the module doc."""

    def __init__(
        self,
        primary: StateStore,
        *,
        mode: Literal["open", "closed"],
        fallback: MemoryStateStore | None = None,
        probe_interval_s: float = 0.5,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = StateStats()
        self.primary = primary
        self.fallback = fallback or MemoryStateStore()
        self.mode = mode
        self._probe_interval_s = probe_interval_s
        self._log = logger or logging.getLogger("routeiq.state")
        self._clock = clock
        self._down_since: float | None = None
        self._next_probe = 0.0
        self._probe_task: asyncio.Task[None] | None = None

    @property
    def available(self) -> bool:
        """False while the shared store is considered down."""
        return self._down_since is None

    def _mark_down(self, exc: BaseException) -> None:
        self.stats.errors += 1
        if self._down_since is not None:
            return
        self._down_since = self._clock()
        self._next_probe = self._down_since + self._probe_interval_s
        self.stats.outages += 1
        self.stats.degraded = True
        action = (
            "serving from local in-memory state (budgets now count per replica)"
            if self.mode == "open"
            else "refusing requests with 503 (fail-closed)"
        )
        # The cause's class only: its text may name the server address.
        self._log.warning(
            "shared state store unavailable (%s); %s until it answers again",
            exc,
            action,
        )

    def _mark_up(self) -> None:
        if self._down_since is None:
            return
        outage = self._clock() - self._down_since
        self._down_since = None
        self.stats.recoveries += 1
        self.stats.degraded = False
        self._log.info("shared state store is back after %.1f s of outage", outage)

    def _maybe_probe(self) -> None:
        now = self._clock()
        if self._probe_task is not None or now < self._next_probe:
            return
        self._next_probe = now + self._probe_interval_s
        self._probe_task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        try:
            self.stats.probes += 1
            if await self.primary.ping():
                self._mark_up()
        finally:
            self._probe_task = None

    async def _decide(
        self, op: Callable[[StateStore], Awaitable[T]], *, raise_closed: bool = True
    ) -> T:
        """Run a decision-path call on Redis, or on the fallback per the failure mode."""
        if self._down_since is None:
            try:
                return await op(self.primary)
            except FAILURES as exc:
                self._mark_down(exc)
        else:
            self._maybe_probe()
        if raise_closed and self.mode == "closed":
            self.stats.refused_unavailable += 1
            raise state_unavailable(self._probe_interval_s)
        self.stats.fallback_calls += 1
        return await op(self.fallback)

    async def consume(self, buckets: Sequence[Bucket], tokens: int) -> ConsumeResult:
        if not buckets:
            return await self.fallback.consume(buckets, tokens)
        return await self._decide(lambda s: s.consume(buckets, tokens))

    async def limit_status(self, buckets: Sequence[Bucket]) -> tuple[BucketStatus, ...]:
        if not buckets:
            return ()
        return await self._decide(lambda s: s.limit_status(buckets))

    async def get_affinity(self, key: str, ttl_s: float) -> str | None:
        return await self._decide(lambda s: s.get_affinity(key, ttl_s))

    async def cooling_backends(self) -> frozenset[str]:
        return await self._decide(lambda s: s.cooling_backends())

    async def set_affinity(self, key: str, backend: str, ttl_s: float) -> None:
        await self._decide(lambda s: s.set_affinity(key, backend, ttl_s), raise_closed=False)

    async def record_outcome(self, backend: str, status: int, rule: HealthRule) -> bool:
        if not rule.enabled or not rule.is_failure(status):
            return False
        return await self._decide(
            lambda s: s.record_outcome(backend, status, rule), raise_closed=False
        )

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        if reservation.origin == "memory":
            await self.fallback.reconcile(reservation, actual_tokens)
            return
        if self._down_since is not None:
            self._maybe_probe()
            self.stats.reconciles_dropped += 1
            return
        try:
            await self.primary.reconcile(reservation, actual_tokens)
        except FAILURES as exc:
            self._mark_down(exc)
            self.stats.reconciles_dropped += 1

    async def ping(self) -> bool:
        """Whether the shared store answers now; a success ends an outage at once."""
        ok = await self.primary.ping()
        if ok:
            self._mark_up()
        return ok

    async def aclose(self) -> None:
        task = self._probe_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.primary.aclose()
        await self.fallback.aclose()
