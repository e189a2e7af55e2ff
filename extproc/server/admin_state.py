"""A read-only view of the ``StateStore`` for ``POST /v1/explain``.

Explaining a request must not change what the next real request gets: no budget is
charged, no session is pinned, no health outcome counted. Reads go to the real store,
so the explanation sees today's levels, cooldowns and pins; ``consume`` is answered
from ``limit_status`` (the same refusal rule, nothing charged). The one write left is
the TTL refresh that ``get_affinity`` does on a hit, which only keeps a live session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from extproc.state.types import (
    Bucket,
    BucketStatus,
    ConsumeResult,
    HealthRule,
    Reservation,
    StateStats,
    StateStore,
)


class ReadOnlyState:
    """Wraps a ``StateStore``; every write is a no-op, every read is passed through."""

    def __init__(self, inner: StateStore) -> None:
        self._inner = inner
        self.stats: StateStats = inner.stats

    async def consume(self, buckets: Sequence[Bucket], tokens: int) -> ConsumeResult:
        statuses = await self._inner.limit_status(buckets)
        out = []
        for s in statuses:
            refused = (s.requests_remaining is not None and s.requests_remaining < 1) or (
                s.tokens_remaining is not None and s.tokens_remaining < tokens
            )
            out.append(dataclasses.replace(s, refused=refused))
        refused_resets = [max(s.reset_requests_s, s.reset_tokens_s) for s in out if s.refused]
        allowed = not refused_resets
        retry = None if allowed else max(refused_resets)
        return ConsumeResult(allowed, tuple(out), retry, None)

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        return None

    async def limit_status(self, buckets: Sequence[Bucket]) -> tuple[BucketStatus, ...]:
        return await self._inner.limit_status(buckets)

    async def get_affinity(self, key: str, ttl_s: float) -> str | None:
        return await self._inner.get_affinity(key, ttl_s)

    async def set_affinity(self, key: str, backend: str, ttl_s: float) -> None:
        return None

    async def record_outcome(self, backend: str, status: int, rule: HealthRule) -> bool:
        return False

    async def cooling_backends(self) -> frozenset[str]:
        return await self._inner.cooling_backends()

    async def ping(self) -> bool:
        return await self._inner.ping()

    async def aclose(self) -> None:
        return None
