"""The ``CacheStore`` protocol every answer store implements, and the vector scan.

A store keeps entries per tenant (a tenant never reads another's), each under its
exact key, and for semantic matching the vectors of each conversation frame, newest
first. Stores raise ``StoreFailure`` (``extproc.state.types``) when their backend
fails; ``extproc.cache.guard`` turns that into a skipped lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from extproc.cache.types import Entry

if TYPE_CHECKING:
    from extproc.cache.spec import CacheSpec
    from extproc.cache.types import Vector


class CacheStore(Protocol):
    async def get(self, tenant: str, key: str) -> Entry | None:
        """The live entry under ``key`` in ``tenant``'s partition."""
        ...

    async def nearest(
        self, tenant: str, frame: str, vector: Vector, limit: int, threshold: float
    ) -> tuple[Entry | None, float | None]:
        """The closest of the frame's ``limit`` newest entries: ``(entry, cosine)`` with
        the entry only when the cosine reaches ``threshold``; ``(None, None)`` when the
        frame holds nothing."""
        ...

    async def put(
        self,
        tenant: str,
        entry: Entry,
        frame: str | None,
        vector: Vector | None,
        spec: CacheSpec,
    ) -> int:
        """Store ``entry`` (and its vector under ``frame``); the number of entries
        evicted to stay within the spec's limits."""
        ...

    async def aclose(self) -> None: ...


def best_match(vectors: Sequence[Vector] | Vector, query: Vector) -> tuple[int, float]:
    """Index and cosine of the row of ``vectors`` closest to ``query`` (unit vectors)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    scores = matrix @ query
    i = int(np.argmax(scores))
    return i, float(scores[i])
