"""The answer cache's values: a stored entry, a hit, a pending store, a lookup's result.

Frozen and light: ``Decision.cache`` carries a ``CacheResult``, and importing this
module loads no store client or model runtime.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from extproc.cache.spec import CacheSpec

    Vector = npt.NDArray[np.float32]

CACHE_HEADER = "x-routeiq-cache"  # hit | miss | bypass (response header, never read)
KIND_HEADER = "x-routeiq-cache-kind"  # exact | semantic
SIMILARITY_HEADER = "x-routeiq-cache-similarity"  # cosine of the match, 4 decimals
AGE_HEADER = "x-routeiq-cache-age"  # seconds since the answer was stored


class CacheStatus(enum.StrEnum):
    HIT = "hit"  # answered from the cache
    MISS = "miss"  # looked up, not found: the answer is stored when it qualifies
    BYPASS = "bypass"  # not eligible (``reason``): no lookup, no store


class CacheKind(enum.StrEnum):
    EXACT = "exact"
    SEMANTIC = "semantic"


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored answer: a ``chat.completion`` JSON body and where it came from."""

    key: str
    body: bytes
    backend: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    created: float  # wall clock, seconds
    usage_estimated: bool = False


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A hit: the entry and how it matched (``similarity`` 1.0 for exact)."""

    entry: Entry
    kind: CacheKind
    similarity: float


@dataclass(frozen=True, slots=True)
class CacheTicket:
    """A miss to store from its response: the keys, the vector and the config's limits."""

    tenant: str
    key: str
    frame: str | None
    vector: Vector | None
    spec: CacheSpec


@dataclass(frozen=True, slots=True)
class CacheResult:
    """What the cache stage did for one request (``Decision.cache``).

    A hit's ``body`` is what the client gets, with status 200 and the decision's
    ``response_headers`` (``content-type`` included)."""

    status: CacheStatus
    reason: str = ""  # bypass: the rule; miss: what was skipped (e.g. ``semantic:long``)
    answer: CachedAnswer | None = None
    ticket: CacheTicket | None = None
    best_similarity: float | None = None  # closest semantic candidate, hit or not
    lookup_ms: float = 0.0
    body: bytes = b""  # hit: the reply (the stored JSON, or its SSE replay for a stream)
    content_type: str = ""

    @property
    def hit(self) -> bool:
        return self.answer is not None

    def explain(self) -> dict[str, Any]:
        """The cache part of the explanation (no prompt text, no body)."""
        doc: dict[str, Any] = {"status": self.status.value}
        if self.reason:
            doc["reason"] = self.reason
        if self.answer is not None:
            e = self.answer.entry
            doc.update(
                kind=self.answer.kind.value,
                similarity=round(self.answer.similarity, 4),
                entry=e.key,
                backend=e.backend,
                model=e.model,
                saved_tokens=e.prompt_tokens + e.completion_tokens,
            )
        elif self.best_similarity is not None:
            doc["best_similarity"] = round(self.best_similarity, 4)
        if self.ticket is not None:
            doc["store"] = "semantic" if self.ticket.vector is not None else "exact"
        doc["lookup_ms"] = round(self.lookup_ms, 3)
        return doc
