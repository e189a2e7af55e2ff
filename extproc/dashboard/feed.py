"""The live decision stream: the decision log's in-memory ring as server-sent events.

Each event is one decision-log line (``event: decision`` or ``event: usage``, ``id:``
its number in the ring, ``data:`` the JSON the log writes, rendered by
``DecisionLog.document``: the same redaction, prompts included only when the
operator turned them on). The stream polls the ring every ``poll_s``; a tick sends at
most ``per_tick`` events (a person reads the table, a sample is enough under heavy
load) and says how many it skipped. Documents are built here, in the admin handler,
only while someone watches: nothing is added to the request path.

A comment line (``: ping``) every ``heartbeat_s`` keeps proxies from closing an idle
stream and lets a disconnected client be noticed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from extproc.decision_log import DecisionLog
    from extproc.state.types import StateStore

BACKLOG = 20  # events sent at connection: the latest decisions, so the table is not empty


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event (``data`` JSON-encoded on one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: ".encode() + orjson.dumps(data, default=str) + b"\n\n"


class LiveFeed:
    """Streams ``log``'s recent items; ``events()`` per connected client."""

    def __init__(
        self,
        log: DecisionLog | None,
        *,
        poll_s: float = 0.5,
        per_tick: int = 50,
        heartbeat_s: float = 10.0,
        unavailable: str = "",
    ) -> None:
        self._log = log
        self._poll_s = poll_s
        self._per_tick = per_tick
        self._heartbeat_s = heartbeat_s
        self._unavailable = unavailable
        self.streams = 0

    async def events(self) -> AsyncGenerator[bytes, None]:
        """Events until the client goes away (or the server closes)."""
        self.streams += 1
        try:
            yield b": connected\n\n"  # at once: the client knows the stream is open
            log = self._log
            if log is None:
                yield sse("info", {"message": self._unavailable})
                while True:
                    await asyncio.sleep(self._heartbeat_s)
                    yield b": ping\n\n"
            recent = log.recent()
            cursor = recent[-BACKLOG - 1][0] if len(recent) > BACKLOG else 0
            quiet_since = time.monotonic()
            while True:
                chunk, cursor = self._tick(log, cursor)
                if chunk:
                    quiet_since = time.monotonic()
                    yield chunk
                elif time.monotonic() - quiet_since >= self._heartbeat_s:
                    quiet_since = time.monotonic()
                    yield b": ping\n\n"
                await asyncio.sleep(self._poll_s)
        finally:
            self.streams -= 1

    def _tick(self, log: DecisionLog, cursor: int) -> tuple[bytes, int]:
        entries = log.recent(cursor)
        if not entries:
            return b"", cursor
        out: list[bytes] = []
        skipped = len(entries) - self._per_tick
        if skipped > 0:
            out.append(sse("info", {"message": f"{skipped} lines skipped (sampling)"}))
            entries = entries[skipped:]
        for seq, item in entries:
            doc = log.document(item)
            out.append(sse(str(doc.get("type", "decision")), doc, seq))
        return b"".join(out), entries[-1][0]


async def budget_levels(
    log: DecisionLog, state: StateStore, limit: int = 20
) -> list[dict[str, Any]]:
    """Levels of the budget buckets the latest decisions were charged to (newest first).

    Buckets are per caller and cannot be listed from the store, so the ones shown are
    those of the decisions still in the log's ring; ``limit_status`` only reads.
    """
    buckets: dict[str, Any] = {}
    for _, item in reversed(log.recent()):
        reservation = getattr(item[2], "reservation", None)  # decisions only
        if reservation is None:
            continue
        for bucket in reservation.buckets:
            buckets.setdefault(bucket.id, bucket)
        if len(buckets) >= limit:
            break
    if not buckets:
        return []
    statuses = await state.limit_status(list(buckets.values())[:limit])
    return [
        {
            "id": s.bucket.id,
            "limit": s.bucket.limit,
            "requests": s.bucket.requests,
            "requests_remaining": s.requests_remaining,
            "tokens": s.bucket.tokens,
            "tokens_remaining": s.tokens_remaining,
            "reset_s": round(max(s.reset_requests_s, s.reset_tokens_s), 1),
        }
        for s in statuses
    ]
