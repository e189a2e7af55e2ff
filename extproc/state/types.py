"""The ``StateStore`` protocol and the frozen values that cross it.

A store is built once per process (``build_state_store``) and survives config reloads:
it holds counters, not rules. Every call carries the rule it applies (a ``Bucket`` with
its capacities, a ``HealthRule``, a TTL), compiled per snapshot by ``StateRules``. A
reload that changes a limit therefore takes effect on the next request, and the
bucket keeps its level (clamped to the new capacity).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from extproc.api.errors import ApiError

Origin = Literal["memory", "redis"]


@dataclass(frozen=True, slots=True)
class Bucket:
    """One counter a request is charged to: a limit applied to one caller.

    ``id`` is unique per (limit, caller attribute value) and is the storage key. Both
    dimensions are token buckets of capacity ``requests`` / ``tokens`` that refill
    continuously at capacity per ``window_ms`` (so an idle bucket is full again after
    one window).
    """

    id: str
    limit: str
    requests: int | None
    tokens: int | None
    window_ms: int


@dataclass(frozen=True, slots=True)
class BucketStatus:
    """A bucket after a consume or a read. ``*_remaining`` is None for an unlimited
    dimension; ``reset_*_s`` is the time until that dimension is full again."""

    bucket: Bucket
    requests_remaining: int | None
    tokens_remaining: int | None
    reset_requests_s: float
    reset_tokens_s: float
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Reservation:
    """What ``consume`` charged; pass it to ``reconcile`` once the real usage is known.

    ``origin`` says which store holds the charge (after a Redis outage the resilient
    store reconciles local charges locally and drops Redis charges it cannot reach).
    """

    buckets: tuple[Bucket, ...]
    tokens: int
    origin: Origin


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    """Outcome of one all-or-nothing check-and-consume over a request's buckets.

    Refused: nothing was charged; ``retry_after_s`` is when the refused buckets will
    have room, or None when the request can never fit (it asks more tokens than a
    bucket's capacity). ``statuses`` holds every bucket, refused ones flagged.
    """

    allowed: bool
    statuses: tuple[BucketStatus, ...]
    retry_after_s: float | None
    reservation: Reservation | None

    @property
    def refused_by(self) -> tuple[str, ...]:
        """Names of the limits that refused (empty when allowed)."""
        return tuple(s.bucket.limit for s in self.statuses if s.refused)


ALLOW_ALL = ConsumeResult(True, (), None, None)


@dataclass(frozen=True, slots=True)
class HealthRule:
    """Compiled ``HealthSpec``: which statuses are failures and when a backend trips."""

    enabled: bool
    threshold: int
    window_ms: int
    cooldown_ms: int
    failure_codes: frozenset[int]
    failure_classes: frozenset[int]  # 5 for "5xx"
    sample_every: int = 1  # read 1 status in N while no failure is recent

    def is_failure(self, status: int) -> bool:
        """Status 0 means no response at all (reset, timeout) and always counts."""
        return status == 0 or status in self.failure_codes or status // 100 in self.failure_classes


@dataclass(slots=True)
class StateStats:
    """Counters of the state layer, exported as metrics by the server (mutable, per store)."""

    outages: int = 0  # transitions healthy -> unavailable
    recoveries: int = 0  # transitions unavailable -> healthy
    errors: int = 0  # failed Redis calls
    fallback_calls: int = 0  # calls answered from local state (fail-open)
    refused_unavailable: int = 0  # calls refused with StateUnavailable (fail-closed)
    reconciles_dropped: int = 0  # Redis reservations that could not be reconciled
    probes: int = 0  # recovery probes sent while unavailable
    degraded: bool = False  # currently serving without the shared store
    extra: dict[str, int] = field(default_factory=dict)


class StoreFailure(Exception):
    """A shared store could not answer (connection, protocol, timeout).

    Every store backend raises this (its own client's exceptions chained as the
    cause), so the failure-mode wrapper names no client library. The message is the
    cause's class name only: a client's text may name the server address.
    """


class StateUnavailable(ApiError):
    """Shared state is unreachable and the operator chose fail-closed.

    It is an ``ApiError`` (503, OpenAI error body, ``Retry-After``) so the servicer can
    answer it like any other refusal.
    """


def state_unavailable(retry_after_s: float = 1.0) -> StateUnavailable:
    return StateUnavailable(
        503,
        "The gateway's rate-limit store is temporarily unavailable; retry shortly.",
        "server_error",
        "state_unavailable",
        None,
        (("retry-after", str(max(1, math.ceil(retry_after_s)))),),
    )


@runtime_checkable
class StateStore(Protocol):
    """Shared counters for budgets, session affinity and backend health.

    Every method is bounded in time; the Redis store raises ``redis`` errors or
    ``TimeoutError`` on failure, the resilient wrapper turns those into local fallback
    (fail-open) or ``StateUnavailable`` (fail-closed). ``stats`` is for metrics.
    """

    stats: StateStats

    async def consume(self, buckets: Sequence[Bucket], tokens: int) -> ConsumeResult:
        """Atomically charge one request and ``tokens`` to every bucket, or to none."""
        ...

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """Adjust the token charge to the real usage (the delta may be negative)."""
        ...

    async def limit_status(self, buckets: Sequence[Bucket]) -> tuple[BucketStatus, ...]:
        """Current levels without charging anything (policy input)."""
        ...

    async def get_affinity(self, key: str, ttl_s: float) -> str | None:
        """The backend this session is pinned to; refreshes the TTL when found."""
        ...

    async def set_affinity(self, key: str, backend: str, ttl_s: float) -> None:
        """Pin (or re-pin) a session to a backend for ``ttl_s`` seconds."""
        ...

    async def record_outcome(self, backend: str, status: int, rule: HealthRule) -> bool:
        """Count an upstream response; True when this call put the backend in cooldown.
        Successes are free (no I/O): only failures are stored."""
        ...

    async def cooling_backends(self) -> frozenset[str]:
        """Backends in cooldown now (cached locally for a short time by Redis stores)."""
        ...

    async def ping(self) -> bool:
        """True when the store answers (readiness)."""
        ...

    async def aclose(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
