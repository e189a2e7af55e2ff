"""``AnswerCache``: the answer cache of one process, across config reloads.

Process-scoped like the state store: built once by the ``Runtime`` (never per
snapshot), holding one store per kind the configs name (``memory``, ``redis``), each
behind ``GuardedStore`` so that a failing store is skipped. The snapshot's
``spec.cache`` comes with every call, so a reload changes TTLs, limits and thresholds
at once without losing entries.

``find`` and ``save`` are the two request-path calls (the cache stage and the response
path); neither raises for a store failure, nor embeds text: the caller passes the
vector it already has (``extproc.pipeline.cache`` computes it off the loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from extproc.api.usage import Usage
from extproc.cache.guard import GuardedStore
from extproc.cache.memory import MemoryCacheStore
from extproc.cache.stats import CacheStats, export_stats
from extproc.cache.store import CacheStore
from extproc.cache.types import CachedAnswer, CacheKind, CacheTicket, Entry
from extproc.cost.prices import usage_cost

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter

    from extproc.cache.capture import Captured
    from extproc.cache.spec import CacheSpec
    from extproc.cache.types import Vector
    from extproc.config.backend import Backend
    from extproc.config.settings import Settings

StoreFactory = Callable[["Settings"], CacheStore]


def _memory(_: Settings) -> CacheStore:
    return MemoryCacheStore()


def _redis(settings: Settings) -> CacheStore:
    from extproc.cache.redis_store import RedisCacheStore  # the client only when named

    return RedisCacheStore.connect(
        settings.redis_url.get_secret_value(),
        prefix=settings.redis_prefix,
        timeout_s=settings.redis_timeout_ms / 1000,
    )


# The store kinds ``spec.cache.store`` may name.
STORES: dict[str, StoreFactory] = {"memory": _memory, "redis": _redis}


class AnswerCache:
    """See the module docstring. ``stats`` are exported by ``export(meter)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        logger: logging.Logger | None = None,
        stores: dict[str, StoreFactory] | None = None,
        retry_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.stats = CacheStats()
        self._log = logger or logging.getLogger("routeiq.cache")
        self._factories = stores or STORES
        self._stores: dict[str, GuardedStore] = {}
        self._retry_s = retry_s

    def export(self, meter: Meter) -> None:
        export_stats(meter, self.stats)

    def store(self, spec: CacheSpec) -> GuardedStore:
        """The store ``spec`` names, built on first use (no I/O until the first call)."""
        store = self._stores.get(spec.store)
        if store is None:
            inner = self._factories[spec.store](self.settings)
            store = GuardedStore(
                inner, spec.store, self.stats, retry_s=self._retry_s, logger=self._log
            )
            self._stores[spec.store] = store
        return store

    # -- lookup ------------------------------------------------------------------------

    async def exact(self, spec: CacheSpec, tenant: str, key: str) -> CachedAnswer | None:
        entry = await self.store(spec).get(tenant, key)
        return CachedAnswer(entry, CacheKind.EXACT, 1.0) if entry is not None else None

    async def semantic(
        self, spec: CacheSpec, tenant: str, frame: str, vector: Vector
    ) -> tuple[CachedAnswer | None, float | None]:
        sem = spec.semantic
        entry, score = await self.store(spec).nearest(
            tenant, frame, vector, sem.scan_limit, sem.threshold
        )
        if entry is None:
            return None, score
        assert score is not None
        return CachedAnswer(entry, CacheKind.SEMANTIC, score), score

    def count_lookup(
        self, result: str, answer: CachedAnswer | None, backend: Backend | None
    ) -> None:
        """One lookup's result (hit, miss, bypass) and, for a hit, what it saved."""
        stats = self.stats
        stats.lookups[result] += 1
        if answer is None:
            return
        e = answer.entry
        stats.hits[answer.kind.value] += 1
        stats.saved_tokens["input"] += e.prompt_tokens
        stats.saved_tokens["output"] += e.completion_tokens
        if backend is not None:
            usage = Usage(
                e.prompt_tokens, e.completion_tokens, e.prompt_tokens + e.completion_tokens
            )
            stats.saved_usd[backend.name] += usage_cost(backend.cost, usage)

    def count_bypass(self, reason: str) -> None:
        self.stats.lookups["bypass"] += 1
        self.stats.bypasses[reason] += 1

    # -- store -------------------------------------------------------------------------

    async def save(self, ticket: CacheTicket, answer: Captured | str, backend: str) -> bool:
        """Store a miss's answer (or count why it is not stored); never raises."""
        if isinstance(answer, str):
            self.stats.store_skipped[answer] += 1
            return False
        entry = Entry(
            ticket.key,
            answer.body,
            backend,
            answer.model,
            answer.prompt_tokens,
            answer.completion_tokens,
            time.time(),
            answer.estimated,
        )
        store = self.store(ticket.spec)
        evicted = await store.put(ticket.tenant, entry, ticket.frame, ticket.vector, ticket.spec)
        if not store.available:
            self.stats.store_skipped["unavailable"] += 1
            return False
        self.stats.stored += 1
        self.stats.evicted += evicted
        return True

    def skip(self, reason: str) -> None:
        """An answer that is not even collected (status, size known up front)."""
        self.stats.store_skipped[reason] += 1

    async def aclose(self) -> None:
        for store in self._stores.values():
            await store.aclose()
        self._stores.clear()
