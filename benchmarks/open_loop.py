"""An open-loop HTTP/1.1 load generator: requests leave on a fixed schedule.

Request ``i`` is due at ``start + i / rate`` whether or not earlier ones have been
answered, and its latency is measured from that due time, not from when it was
actually written: a slow server then shows as the latency its clients would see
instead of silently lowering the rate (coordinated omission, the flaw of closed-loop
tools such as ``wrk`` and ``hey -q``, whose workers wait for an answer before sending
the next request). Keep-alive connections are reused; a new one is opened whenever
all are busy, so a stalled response never holds back the schedule.

It runs on asyncio in the benchmark's own process. The event loop wakes timers with
millisecond granularity (epoll), so every request may leave up to ~1 ms late; that
lag is the same in every phase of a run and is reported (``lag_ms``) so the floor of
the tool itself is visible next to the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def http_request(path: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """The bytes of one HTTP/1.1 POST with a JSON body (built before the run)."""
    lines = [
        f"POST {path} HTTP/1.1",
        "host: 127.0.0.1",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class LoadResult:
    """Latencies (ms, from each request's due time) of the requests that got a 200."""

    latencies_ms: np.ndarray
    lag_ms: np.ndarray  # how late each request was written, after its due time
    sent: int
    failed: int  # non-200 answers and connection errors
    first_error: str | None

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms.size else 0.0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status and whether the server keeps the connection open; the body is drained."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, chunked, keep = 0, False, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    if not chunked:
        await reader.readexactly(length)
        return status, keep
    while True:
        size = int((await reader.readline()).split(b";", 1)[0], 16)
        await reader.readexactly(size + 2)  # the chunk and its CRLF
        if size == 0:
            return status, keep


class _Pool:
    """Idle keep-alive connections; a busy pool opens one more."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.all: list[asyncio.StreamWriter] = []

    async def get(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.idle:
            return self.idle.pop()
        conn = await asyncio.open_connection(self.host, self.port)
        self.all.append(conn[1])
        return conn

    async def close(self) -> None:
        for writer in self.all:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


async def run_open_loop(
    host: str, port: int, requests: Sequence[bytes], rate: float, connections: int = 8
) -> LoadResult:
    """Send ``requests`` in order at ``rate`` per second; wait for every answer."""
    loop = asyncio.get_running_loop()
    pool = _Pool(host, port)
    for _ in range(connections):  # open before the clock starts
        pool.idle.append(await pool.get())
    n = len(requests)
    latencies = np.full(n, np.nan)
    lags = np.zeros(n)
    errors: list[str] = []

    async def one(i: int, due: float) -> None:
        try:
            reader, writer = await pool.get()
            lags[i] = loop.time() - due
            writer.write(requests[i])
            status, keep = await _read_response(reader)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            return
        if keep:
            pool.idle.append((reader, writer))
        if status == 200:
            latencies[i] = loop.time() - due
        else:
            errors.append(f"HTTP {status}")

    tasks = []
    start = loop.time() + 0.05
    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    await pool.close()
    ok = latencies[~np.isnan(latencies)] * 1000.0
    return LoadResult(ok, lags * 1000.0, n, len(errors), errors[0] if errors else None)
