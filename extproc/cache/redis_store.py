"""``RedisCacheStore``: answers and their vectors shared by every replica.

Keys (under ``{prefix}cache:``, ``{t}`` a hash of the tenant's name)::

    {t}:e:{key}    hash    b = answer body, m = JSON metadata   (PX = ttl)
    {t}:v:{key}    string  the float32 vector of the last user turn (PX = ttl)
    {t}:f:{frame}  list    entry keys of one conversation frame, newest first,
                           trimmed to ``scanLimit`` (PX = ttl, renewed on write)
    {t}:z          zset    entry key -> stored ms: the tenant's entries, for eviction

A semantic lookup is a bounded scan: one script returns the vectors of the frame's
newest ``scanLimit`` entries, numpy finds the closest, and only a match above the
threshold costs a second round trip for its body. RediSearch vector indexes are not
used (the scan is what works on every Redis, including 6.2 without modules).

Every call is bounded by ``timeout_s`` and raises ``StoreFailure`` on any Redis
failure; ``extproc.cache.guard`` skips the cache while Redis is down. One Redis (or
Sentinel), not Redis Cluster: a script touches keys it derives from the tenant.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from extproc.cache.keys import tenant_id
from extproc.cache.store import best_match
from extproc.cache.types import Entry
from extproc.state.redis_store import LuaScript, _store_call

if TYPE_CHECKING:
    from extproc.cache.spec import CacheSpec
    from extproc.cache.types import Vector


class _CacheScript(LuaScript):
    """A ``LuaScript`` (EVALSHA, reloaded on NOSCRIPT) shipped with this package."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("extproc.cache").joinpath(name).read_bytes()
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()


def _meta(entry: Entry) -> bytes:
    return orjson.dumps(
        {
            "backend": entry.backend,
            "model": entry.model,
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens,
            "created": entry.created,
            "estimated": entry.usage_estimated,
        }
    )


def _entry(key: str, fields: Mapping[Any, Any]) -> Entry | None:
    body, meta = fields.get(b"b"), fields.get(b"m")
    if not isinstance(body, bytes) or meta is None:
        return None
    m: dict[str, Any] = orjson.loads(meta)
    return Entry(
        key,
        body,
        str(m["backend"]),
        str(m["model"]),
        int(m["prompt_tokens"]),
        int(m["completion_tokens"]),
        float(m["created"]),
        bool(m.get("estimated", False)),
    )


class RedisCacheStore:
    """The shared answer store; see the module docstring."""

    def __init__(self, client: Redis, *, prefix: str, timeout_s: float) -> None:
        self._client = client
        self._prefix = prefix + "cache:"
        self._timeout_s = timeout_s
        self._put = _CacheScript("put.lua")
        self._scan = _CacheScript("scan.lua")

    @classmethod
    def connect(cls, url: str, *, prefix: str, timeout_s: float) -> RedisCacheStore:
        """A store with its own connection pool (connections open on first use)."""
        client = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        return cls(client, prefix=prefix, timeout_s=timeout_s)

    def _base(self, tenant: str) -> str:
        return f"{self._prefix}{tenant_id(tenant)}:"

    @_store_call
    async def get(self, tenant: str, key: str) -> Entry | None:
        async with asyncio.timeout(self._timeout_s):
            fields = await self._client.hgetall(f"{self._base(tenant)}e:{key}")
        return _entry(key, fields) if fields else None

    @_store_call
    async def nearest(
        self, tenant: str, frame: str, vector: Vector, limit: int, threshold: float
    ) -> tuple[Entry | None, float | None]:
        base = self._base(tenant)
        async with asyncio.timeout(self._timeout_s):
            reply = await self._scan(self._client, [f"{base}f:{frame}"], [limit, f"{base}v:"])
        if not reply:
            return None, None
        keys = reply[0::2]
        rows = np.frombuffer(b"".join(reply[1::2]), dtype=np.float32)
        if rows.size != len(keys) * vector.shape[0]:  # written by another embedder
            return None, None
        i, score = best_match(rows.reshape(len(keys), -1), vector)
        if score < threshold:
            return None, score
        key = keys[i].decode()
        async with asyncio.timeout(self._timeout_s):
            fields = await self._client.hgetall(f"{base}e:{key}")
        return (_entry(key, fields) if fields else None), score

    @_store_call
    async def put(
        self,
        tenant: str,
        entry: Entry,
        frame: str | None,
        vector: Vector | None,
        spec: CacheSpec,
    ) -> int:
        base = self._base(tenant)
        semantic = frame is not None and vector is not None
        keys = [
            f"{base}e:{entry.key}",
            f"{base}v:{entry.key}" if semantic else "",
            f"{base}f:{frame}" if semantic else "",
            f"{base}z",
        ]
        args = [
            entry.body,
            _meta(entry),
            np.ascontiguousarray(vector, dtype=np.float32).tobytes() if semantic else b"",
            entry.key,
            spec.ttl_seconds * 1000,
            spec.max_entries_per_tenant,
            spec.semantic.scan_limit,
            f"{base}e:",
            f"{base}v:",
        ]
        async with asyncio.timeout(self._timeout_s):
            return int(await self._put(self._client, keys, args))

    async def aclose(self) -> None:
        await self._client.aclose()
