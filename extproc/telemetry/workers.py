"""Metrics of N worker processes behind one admin endpoint.

Each worker serves its own Prometheus text on a Unix socket (``WorkerMetricsServer``,
in the worker's event loop); the parent's admin ``/metrics`` scrapes every socket
concurrently and merges the samples (``aggregate_metrics``). Why sockets rather than
``prometheus_client``'s multiprocess mode: that mode only sees metrics made with
``prometheus_client`` itself (not the OpenTelemetry instruments, which also feed
OTLP), selects its storage from an environment variable at import time, and leaves
mmap files to clean up after a worker dies. A socket needs no shared files, a dead
worker simply stops contributing (and shows as ``routeiq_worker_up 0``), and
``curl --unix-socket PATH http://worker/metrics`` shows one worker alone.

The protocol is a minimal HTTP/1.0 exchange: one request, one response, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client.metrics_core import Metric

from extproc.telemetry.prometheus import merge_families, render

MAX_REQUEST_HEAD = 8192
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class WorkerMetricsServer:
    """Serves ``source()`` (a worker's Prometheus text) on a Unix socket.

    Start it in the worker's event loop once telemetry exists; ``close`` at shutdown.
    The socket file is created mode 0600 and removed on close.
    """

    def __init__(self, source: Callable[[], bytes], socket_path: Path) -> None:
        self._source = source
        self.socket_path = socket_path
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.socket_path.unlink(missing_ok=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            body = self._source()
            head = (
                "HTTP/1.0 200 OK\r\n"
                "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def scrape_worker(socket_path: Path, timeout_s: float = 2.0) -> bytes:
    """One worker's Prometheus text; raises ``OSError``/``TimeoutError`` when it is down."""

    async def _scrape() -> bytes:
        reader, writer = await asyncio.open_unix_connection(
            str(socket_path), limit=MAX_REQUEST_HEAD
        )
        try:
            writer.write(b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n")
            await writer.drain()
            chunks: list[bytes] = []
            total = 0
            while chunk := await reader.read(65536):
                total += len(chunk)
                if total > MAX_RESPONSE_BYTES:
                    raise OSError(f"metrics from {socket_path} exceed {MAX_RESPONSE_BYTES} bytes")
                chunks.append(chunk)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1.0 200"):
            raise OSError(f"bad answer from metrics socket {socket_path}")
        return body

    return await asyncio.wait_for(_scrape(), timeout=timeout_s)


async def aggregate_metrics(
    socket_paths: Sequence[Path],
    *,
    local: bytes | None = None,
    timeout_s: float = 2.0,
) -> bytes:
    """Scrape every worker socket at once and merge; ``local`` adds the caller's own text.

    Adds ``routeiq_worker_up{worker="<socket file stem>"}`` (1 answered, 0 did not),
    so a missing worker is visible instead of silently lowering the sums.
    """
    results = await asyncio.gather(
        *(scrape_worker(p, timeout_s) for p in socket_paths), return_exceptions=True
    )
    texts: list[bytes] = [r for r in results if isinstance(r, bytes)]
    if local is not None:
        texts.append(local)
    families = merge_families(texts)
    up = Metric("routeiq_worker_up", "1 when the worker answered the last metrics scrape.", "gauge")
    for path, result in zip(socket_paths, results, strict=True):
        up.add_sample("routeiq_worker_up", {"worker": path.stem}, float(isinstance(result, bytes)))
    return render([*families, up])
