"""In-memory ``StateStore``: one process, no I/O. The default, and the fail-open fallback.

The algorithms are exactly those of the Lua scripts (``buckets.lua``, ``health.lua``)
so that a process behaves the same with either store; only the scope differs (this
one counts what this process saw). All methods run without awaiting anything, so on
one event loop each call is atomic without a lock.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence

from extproc.state.types import (
    ALLOW_ALL,
    Bucket,
    BucketStatus,
    ConsumeResult,
    HealthRule,
    Reservation,
    StateStats,
)

# Housekeeping (dropping full buckets, expired sessions) runs every this many calls;
# it is O(entries) and keeps memory bounded by the set of recently active callers.
_SWEEP_EVERY = 4096


class _Level:
    """Levels of one bucket at ``ts`` (ms). None: dimension unlimited or never seen."""

    __slots__ = ("req", "tok", "ts", "window")

    def __init__(self, req: float | None, tok: float | None, ts: float, window: int) -> None:
        self.req = req
        self.tok = tok
        self.ts = ts
        self.window = window  # levels never go below -capacity: full after 2 windows idle


def _refill(level: float | None, cap: int | None, elapsed: float, window: int) -> float | None:
    if cap is None:
        return None
    if level is None:
        return float(cap)
    return min(float(cap), level + elapsed * cap / window)


def _ms_to_full(level: float | None, cap: int | None, window: int) -> float:
    if cap is None or level is None:
        return 0.0
    return max(0.0, (cap - level) * window / cap)


def _status(b: Bucket, req: float | None, tok: float | None, refused: bool) -> BucketStatus:
    return BucketStatus(
        bucket=b,
        requests_remaining=None if req is None else max(0, math.floor(req)),
        tokens_remaining=None if tok is None else max(0, math.floor(tok)),
        reset_requests_s=math.ceil(_ms_to_full(req, b.requests, b.window_ms)) / 1000,
        reset_tokens_s=math.ceil(_ms_to_full(tok, b.tokens, b.window_ms)) / 1000,
        refused=refused,
    )


class MemoryStateStore:
    """Process-local counters. ``clock`` returns seconds (monotonic) and exists for tests."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.stats = StateStats()
        self._clock = clock
        self._levels: dict[str, _Level] = {}
        self._affinity: dict[str, tuple[str, float]] = {}  # key -> (backend, deadline s)
        self._failures: dict[str, deque[float]] = {}  # backend -> failure times (ms)
        self._cooling: dict[str, float] = {}  # backend -> cooldown end (ms)
        self._calls = 0

    def _now_ms(self) -> float:
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self._sweep()
        return self._clock() * 1000.0

    def _current(self, b: Bucket, now: float) -> tuple[float | None, float | None]:
        lv = self._levels.get(b.id)
        if lv is None:
            return _refill(None, b.requests, 0, b.window_ms), _refill(
                None, b.tokens, 0, b.window_ms
            )
        elapsed = max(0.0, now - lv.ts)
        return (
            _refill(lv.req, b.requests, elapsed, b.window_ms),
            _refill(lv.tok, b.tokens, elapsed, b.window_ms),
        )

    async def consume(self, buckets: Sequence[Bucket], tokens: int) -> ConsumeResult:
        if not buckets:
            return ALLOW_ALL
        now = self._now_ms()
        cost = max(0, tokens)
        current = [self._current(b, now) for b in buckets]
        refused: list[bool] = []
        wait_ms = 0.0
        impossible = False
        for b, (req, tok) in zip(buckets, current, strict=True):
            bad = False
            if req is not None and b.requests is not None and req < 1:
                bad = True
                wait_ms = max(wait_ms, (1 - req) * b.window_ms / b.requests)
            if tok is not None and b.tokens is not None and tok < cost:
                bad = True
                if cost > b.tokens:
                    impossible = True
                else:
                    wait_ms = max(wait_ms, (cost - tok) * b.window_ms / b.tokens)
            refused.append(bad)
        if any(refused):
            statuses = tuple(
                _status(b, req, tok, bad)
                for b, (req, tok), bad in zip(buckets, current, refused, strict=True)
            )
            retry = None if impossible else math.ceil(wait_ms) / 1000
            return ConsumeResult(False, statuses, retry, None)
        out: list[BucketStatus] = []
        for b, (req, tok) in zip(buckets, current, strict=True):
            req = None if req is None else req - 1
            tok = None if tok is None else tok - cost
            self._levels[b.id] = _Level(req, tok, now, b.window_ms)
            out.append(_status(b, req, tok, False))
        return ConsumeResult(True, tuple(out), None, Reservation(tuple(buckets), cost, "memory"))

    async def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        delta = max(0, actual_tokens) - reservation.tokens
        if delta == 0:
            return
        now = self._now_ms()
        for b in reservation.buckets:
            if b.tokens is None:
                continue
            req, tok = self._current(b, now)
            assert tok is not None
            # Debt is allowed (a long answer overspends) but bounded to one capacity.
            tok = min(float(b.tokens), max(-float(b.tokens), tok - delta))
            self._levels[b.id] = _Level(req, tok, now, b.window_ms)

    async def limit_status(self, buckets: Sequence[Bucket]) -> tuple[BucketStatus, ...]:
        now = self._now_ms()
        return tuple(_status(b, *self._current(b, now), False) for b in buckets)

    async def get_affinity(self, key: str, ttl_s: float) -> str | None:
        now = self._now_ms() / 1000
        entry = self._affinity.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._affinity[key]
            return None
        self._affinity[key] = (entry[0], now + ttl_s)
        return entry[0]

    async def set_affinity(self, key: str, backend: str, ttl_s: float) -> None:
        self._affinity[key] = (backend, self._now_ms() / 1000 + ttl_s)

    async def record_outcome(self, backend: str, status: int, rule: HealthRule) -> bool:
        if not rule.enabled or not rule.is_failure(status):
            return False
        now = self._now_ms()
        if self._cooling.get(backend, 0.0) > now:
            return False  # already cooling: late failures of in-flight requests
        times = self._failures.get(backend)
        if times is None or times.maxlen != rule.threshold:
            times = deque(times or (), maxlen=rule.threshold)
            self._failures[backend] = times
        times.append(now)
        if len(times) >= rule.threshold and now - times[0] <= rule.window_ms:
            del self._failures[backend]
            self._cooling[backend] = now + rule.cooldown_ms
            return True
        return False

    async def cooling_backends(self) -> frozenset[str]:
        if not self._cooling:
            return frozenset()
        now = self._now_ms()
        return frozenset(b for b, end in self._cooling.items() if end > now)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._levels.clear()
        self._affinity.clear()
        self._failures.clear()
        self._cooling.clear()

    def _sweep(self) -> None:
        """Forget what has expired: full buckets equal missing ones, old sessions, cooldowns."""
        now_ms = self._clock() * 1000.0
        full = [k for k, lv in self._levels.items() if now_ms - lv.ts > 2 * lv.window]
        for k in full:
            del self._levels[k]
        now_s = now_ms / 1000
        for key in [k for k, (_, end) in self._affinity.items() if end <= now_s]:
            del self._affinity[key]
        for name in [b for b, end in self._cooling.items() if end <= now_ms]:
            del self._cooling[name]
        for name in [b for b, q in self._failures.items() if not q or now_ms - q[-1] > 86_400_000]:
            del self._failures[name]
