"""``MemoryCacheStore``: the answer cache of one process (replicas do not share it).

Bounded three ways: a TTL per entry (checked on read, and the oldest expired entries of
a tenant are dropped on each write), ``maxEntriesPerTenant`` (a tenant's oldest entry
is evicted first) and ``maxEntries`` for the whole process (the least recently written
tenant gives up its oldest entry), so no number of tenants or requests grows it past
what the operator set. Used only from the event loop: no locks.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING

from extproc.cache.store import best_match
from extproc.cache.types import Entry

if TYPE_CHECKING:
    from extproc.cache.spec import CacheSpec
    from extproc.cache.types import Vector


class _Stored:
    __slots__ = ("entry", "expires", "frame")

    def __init__(self, entry: Entry, expires: float, frame: str | None) -> None:
        self.entry = entry
        self.expires = expires
        self.frame = frame


class _Tenant:
    __slots__ = ("entries", "frames")

    def __init__(self) -> None:
        self.entries: OrderedDict[str, _Stored] = OrderedDict()  # oldest first
        self.frames: dict[str, OrderedDict[str, Vector]] = {}  # frame -> key -> vector


class MemoryCacheStore:
    """Per-process answer store; see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()  # least recently written first
        self._count = 0

    def __len__(self) -> int:
        return self._count

    async def get(self, tenant: str, key: str) -> Entry | None:
        t = self._tenants.get(tenant)
        stored = t.entries.get(key) if t is not None else None
        if stored is None:
            return None
        if stored.expires <= self._clock():
            assert t is not None
            self._drop(tenant, t, key)
            return None
        return stored.entry

    async def nearest(
        self, tenant: str, frame: str, vector: Vector, limit: int, threshold: float
    ) -> tuple[Entry | None, float | None]:
        t = self._tenants.get(tenant)
        vectors = t.frames.get(frame) if t is not None else None
        if not vectors:
            return None, None
        assert t is not None
        now = self._clock()
        keys: list[str] = []
        rows: list[Vector] = []
        for key, vec in islice(reversed(vectors.items()), limit):
            if t.entries[key].expires > now:
                keys.append(key)
                rows.append(vec)
        if not rows:
            return None, None
        i, score = best_match(rows, vector)
        return (t.entries[keys[i]].entry if score >= threshold else None), score

    async def put(
        self,
        tenant: str,
        entry: Entry,
        frame: str | None,
        vector: Vector | None,
        spec: CacheSpec,
    ) -> int:
        t = self._tenants.get(tenant)
        if t is None:
            t = self._tenants[tenant] = _Tenant()
        else:
            self._tenants.move_to_end(tenant)
        now = self._clock()
        if entry.key in t.entries:
            self._drop(tenant, t, entry.key, keep_tenant=True)
        else:
            self._expire(tenant, t, now)  # expired entries go first, without counting
        if vector is None:
            frame = None
        t.entries[entry.key] = _Stored(entry, now + spec.ttl_seconds, frame)
        self._count += 1
        if frame is not None and vector is not None:
            t.frames.setdefault(frame, OrderedDict())[entry.key] = vector
        evicted = 0
        while len(t.entries) > spec.max_entries_per_tenant:
            self._drop(tenant, t, next(iter(t.entries)))
            evicted += 1
        while self._count > spec.max_entries:
            name, oldest = next(iter(self._tenants.items()))
            self._drop(name, oldest, next(iter(oldest.entries)))
            evicted += 1
        return evicted

    def _expire(self, tenant: str, t: _Tenant, now: float) -> None:
        """Drop the tenant's oldest entries while they are expired."""
        while t.entries:
            key, stored = next(iter(t.entries.items()))
            if stored.expires > now:
                break
            self._drop(tenant, t, key, keep_tenant=True)

    def _drop(self, tenant: str, t: _Tenant, key: str, *, keep_tenant: bool = False) -> None:
        stored = t.entries.pop(key)
        self._count -= 1
        if stored.frame is not None:
            vectors = t.frames.get(stored.frame)
            if vectors is not None:
                vectors.pop(key, None)
                if not vectors:
                    del t.frames[stored.frame]
        if not t.entries and not keep_tenant:
            del self._tenants[tenant]

    async def aclose(self) -> None:
        self._tenants.clear()
        self._count = 0
