"""``GuardedStore``: a cache store that fails is skipped, never failing a request.

The cache only saves work, so its store being down must cost nothing but the saving:
the first failure (``StoreFailure``) logs one warning and counts an outage; while it
lasts, calls are not even attempted (lookups are misses, stores are dropped, each
counted) until ``retry_s`` has passed, when the next call tries again. The first call
that succeeds logs one line and the store is used normally again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from extproc.cache.store import CacheStore
from extproc.cache.types import Entry
from extproc.state.types import StoreFailure

if TYPE_CHECKING:
    from extproc.cache.spec import CacheSpec
    from extproc.cache.stats import CacheStats
    from extproc.cache.types import Vector

T = TypeVar("T")


class GuardedStore:
    """Wraps one store; see the module docstring. ``stats`` counts errors and outages."""

    def __init__(
        self,
        inner: CacheStore,
        name: str,
        stats: CacheStats,
        *,
        retry_s: float = 1.0,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name = name
        self._stats = stats
        self._retry_s = retry_s
        self._log = logger or logging.getLogger("routeiq.cache")
        self._clock = clock
        self._down = False
        self._retry_at = 0.0

    @property
    def available(self) -> bool:
        return not self._down

    async def _call(self, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        if self._down and self._clock() < self._retry_at:
            self._stats.skipped += 1
            return fallback
        try:
            result = await call()
        except StoreFailure as exc:
            self._stats.errors += 1
            self._retry_at = self._clock() + self._retry_s
            if not self._down:
                self._down = True
                self._stats.outages += 1
                self._log.warning(
                    "answer cache store '%s' unavailable (%s): serving without the cache",
                    self.name,
                    exc,
                )
            return fallback
        if self._down:
            self._down = False
            self._log.warning("answer cache store '%s' answering again", self.name)
        return result

    async def get(self, tenant: str, key: str) -> Entry | None:
        return await self._call(lambda: self.inner.get(tenant, key), None)

    async def nearest(
        self, tenant: str, frame: str, vector: Vector, limit: int, threshold: float
    ) -> tuple[Entry | None, float | None]:
        return await self._call(
            lambda: self.inner.nearest(tenant, frame, vector, limit, threshold), (None, None)
        )

    async def put(
        self,
        tenant: str,
        entry: Entry,
        frame: str | None,
        vector: Vector | None,
        spec: CacheSpec,
    ) -> int:
        return await self._call(lambda: self.inner.put(tenant, entry, frame, vector, spec), 0)

    async def aclose(self) -> None:
        await self.inner.aclose()
