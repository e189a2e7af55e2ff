"""A bounded, thread-safe LRU from text to its embedding.

Agent loops resend the same last user turn many times, and a retried request repeats
its prompt: the embedding (the costly part of a classification) is then looked up
instead of recomputed. The key is the exact text that is embedded; one cache belongs
to one ``Embedder``, which belongs to one config snapshot, so a reload starts cold
and a vector of an old model is never served.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class TextCache(Generic[V]):
    """At most ``max_entries`` values, least recently used evicted first."""

    def __init__(self, max_entries: int) -> None:
        self._max = max(1, max_entries)
        self._data: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if len(self._data) > self._max:
                self._data.popitem(last=False)
