"""Redis ``StateStore``: budgets, affinity and health shared by every replica.

One store per process, built from ``Settings`` (never per config snapshot), so its
connection pool survives reloads. Every call is one round trip (an ``EVALSHA`` of a
script shipped next to this module, or a plain GETEX/SET) and is bounded by
``timeout_s``: a slow or absent Redis raises ``TimeoutError`` or a ``redis`` error
quickly, and the resilient wrapper decides what the request gets.

Keys (all under ``prefix``)::

    {prefix}rl:{bucket id}   hash  r, t, ts    token-bucket levels (expires once full)
    {prefix}aff:{session}    str   backend     session affinity (TTL = affinity ttl)
    {prefix}hf:{backend}     list  ms times    recent failures (expires after window)
    {prefix}cool             hash  backend->ms cooldown end, server time

Scripts use Redis ``TIME``, so replica clock skew does not matter. All keys of one
script call are on one server: use a single Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Callable, Coroutine, Sequence
from importlib import resources
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from extproc.state.types import (
    ALLOW_ALL,
    Bucket,
    BucketStatus,
    ConsumeResult,
    HealthRule,
    Reservation,
    StateStats,
    StoreFailure,
)

P = ParamSpec("P")
R = TypeVar("R")

# What counts as "Redis is unavailable": connection and protocol errors, timeouts
# (ours and redis-py's), and OS-level socket errors.
_FAILURES: tuple[type[BaseException], ...] = (RedisError, TimeoutError, OSError)


def _store_call(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Raise ``StoreFailure`` (chaining the client's exception) for any Redis failure."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _FAILURES as exc:
            raise StoreFailure(type(exc).__name__) from exc

    return call


class LuaScript:
    """A script run with EVALSHA; on NOSCRIPT (Redis restarted or flushed) it is loaded
    again and the call retried once."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("extproc.state").joinpath(name).read_bytes()
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()

    async def __call__(self, client: Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bucket_args(buckets: Sequence[Bucket]) -> list[int]:
    args: list[int] = []
    for b in buckets:
        args.append(-1 if b.requests is None else b.requests)
        args.append(-1 if b.tokens is None else b.tokens)
        args.append(b.window_ms)
    return args


def _decode(buckets: Sequence[Bucket], reply: list[int]) -> tuple[BucketStatus, ...]:
    out = []
    for i, b in enumerate(buckets):
        r, k, rr, rt, refused = reply[2 + 5 * i : 7 + 5 * i]
        out.append(
            BucketStatus(
                bucket=b,
                requests_remaining=None if r < 0 else int(r),
                tokens_remaining=None if k < 0 else int(k),
                reset_requests_s=int(rr) / 1000,
                reset_tokens_s=int(rt) / 1000,
                refused=bool(refused),
            )
        )
    return tuple(out)


class RedisStateStore:
    """The shared store. ``health_cache_s`` bounds how stale ``cooling_backends`` may be
    (it is read on every request, so it is fetched at most once per that interval and
    served from memory in between; a cooldown this process starts is seen at once)."""

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "routeiq:",
        timeout_s: float = 0.05,
        health_cache_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stats = StateStats()
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._cache_s = health_cache_s
        self._clock = clock
        self._buckets = LuaScript("buckets.lua")
        self._health = LuaScript("health.lua")
        self._cool_key = prefix + "cool"
        self._cool_until: dict[str, float] = {}  # backend -> local clock deadline (s)
        self._cool_set: frozenset[str] = frozenset()
        self._cool_fetched = -float("inf")
        self._cool_next_change = float("inf")
        self._cool_refreshing = False

    @classmethod
    def connect(
        cls, url: str, *, prefix: str, timeout_s: float, health_cache_s: float = 1.0
    ) -> RedisStateStore:
        """A store with its own connection pool (no I/O yet: connections open lazily).

        One retry without backoff lets a pooled connection broken by a Redis restart
        reconnect transparently; ``timeout_s`` still bounds the whole call.
        """
        client = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=0,
        )
        return cls(client, prefix=prefix, timeout_s=timeout_s, health_cache_s=health_cache_s)

    def _key(self, bucket: Bucket) -> str:
        return f"{self._prefix}rl:{bucket.id}"

    @_store_call
    async def consume(self, buckets: Sequence[Bucket], tokens: int) -> ConsumeResult:
        if not buckets:
            return ALLOW_ALL
        cost = max(0, tokens)
        keys = [self._key(b) for b in buckets]
        async with asyncio.timeout(self._timeout_s):
            reply = await self._buckets(self._client, keys, ["c", cost, *_bucket_args(buckets)])
        statuses = _decode(buckets, reply)
        if reply[0]:
            return ConsumeResult(True, statuses, None, Reservation(tuple(buckets), cost, "redis"))
        retry = None if reply[1] < 0 else int(reply[1]) / 1000
        return ConsumeResult(False, statuses, retry, None)

    @_store_call
    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        delta = max(0, actual_tokens) - reservation.tokens
        buckets = [b for b in reservation.buckets if b.tokens is not None]
        if delta == 0 or not buckets:
            return
        keys = [self._key(b) for b in buckets]
        async with asyncio.timeout(self._timeout_s):
            await self._buckets(self._client, keys, ["r", delta, *_bucket_args(buckets)])

    @_store_call
    async def limit_status(self, buckets: Sequence[Bucket]) -> tuple[BucketStatus, ...]:
        if not buckets:
            return ()
        keys = [self._key(b) for b in buckets]
        async with asyncio.timeout(self._timeout_s):
            reply = await self._buckets(self._client, keys, ["s", 0, *_bucket_args(buckets)])
        return _decode(buckets, reply)

    @_store_call
    async def get_affinity(self, key: str, ttl_s: float) -> str | None:
        async with asyncio.timeout(self._timeout_s):
            value = await self._client.getex(
                f"{self._prefix}aff:{key}", px=max(1, int(ttl_s * 1000))
            )
        return None if value is None else _text(value)

    @_store_call
    async def set_affinity(self, key: str, backend: str, ttl_s: float) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._client.set(
                f"{self._prefix}aff:{key}", backend, px=max(1, int(ttl_s * 1000))
            )

    @_store_call
    async def record_outcome(self, backend: str, status: int, rule: HealthRule) -> bool:
        if not rule.enabled or not rule.is_failure(status):
            return False
        keys = [f"{self._prefix}hf:{backend}", self._cool_key]
        args = ["f", backend, rule.threshold, rule.window_ms, rule.cooldown_ms]
        async with asyncio.timeout(self._timeout_s):
            tripped = bool(await self._health(self._client, keys, args))
        if tripped:
            self._cool_until[backend] = self._clock() + rule.cooldown_ms / 1000
            self._publish_cooling(self._clock())
        return tripped

    @_store_call
    async def cooling_backends(self) -> frozenset[str]:
        now = self._clock()
        if now - self._cool_fetched >= self._cache_s and not self._cool_refreshing:
            self._cool_refreshing = True  # concurrent callers meanwhile use the last set
            try:
                async with asyncio.timeout(self._timeout_s):
                    reply = await self._health(self._client, [self._cool_key], ["l"])
            finally:
                self._cool_refreshing = False
            now = self._clock()
            self._cool_until = {
                _text(reply[i]): now + int(reply[i + 1]) / 1000 for i in range(0, len(reply), 2)
            }
            self._cool_fetched = now
            self._publish_cooling(now)
        elif now >= self._cool_next_change:
            self._publish_cooling(now)
        return self._cool_set

    def _publish_cooling(self, now: float) -> None:
        """Recompute the cached set; remember when the next cooldown ends locally."""
        live = {b: end for b, end in self._cool_until.items() if end > now}
        self._cool_until = live
        self._cool_set = frozenset(live)
        self._cool_next_change = min(live.values(), default=float("inf"))

    async def ping(self) -> bool:
        """Readiness: True when Redis answers PING within the timeout. Never raises."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return bool(await self._client.ping())
        except Exception:
            return False

    async def aclose(self) -> None:
        await self._client.aclose()
