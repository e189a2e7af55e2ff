"""A small HTTP/1.1 server on asyncio streams, for the admin port only.

Why not a web framework: the admin port serves five fixed routes to probes, a
Prometheus scraper and operators; a framework would add a dependency (and its
event-loop and logging conventions) to every pod for that. This is enough and
bounded: keep-alive (HTTP/1.1 default, HTTP/1.0 on request), request line and each
header line at most 8 KiB, at most 100 headers, ``Content-Length`` bodies up to
``max_body_bytes`` (no chunked uploads: 411/501), an idle timeout between requests,
and JSON errors for everything that goes wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson

MAX_LINE = 8192
MAX_HEADERS = 100


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """A response; with ``stream`` (server-sent events) the body is what the iterator
    yields, written as it comes, with no ``Content-Length``, and the connection closes
    when the iterator ends."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    stream: AsyncIterator[bytes] | None = None


Handler = Callable[[Request], Awaitable[Response]]


def json_response(status: int, doc: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(
        status, orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str) + b"\n", headers=headers
    )


def error_response(
    status: int, message: str, code: str | None = None, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """An error in the OpenAI shape the rest of RouteIQ uses."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return json_response(
        status, {"error": {"message": message, "type": kind, "code": code}}, headers
    )


class _Reject(Exception):
    """A request that gets an error response and then the connection closes."""

    def __init__(self, response: Response) -> None:
        self.response = response


class HttpServer:
    """Routes ``(method, path)`` to handlers; GET routes answer HEAD too."""

    def __init__(
        self,
        routes: Mapping[str, Mapping[str, Handler]],
        *,
        max_body_bytes: int,
        idle_timeout_s: float = 30.0,
        log: logging.Logger,
    ) -> None:
        self._routes = routes
        self._max_body = max_body_bytes
        self._idle = idle_timeout_s
        self._log = log
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; the bound port (useful with port 0)."""
        self._server = await asyncio.start_server(self._connection, host, port, limit=MAX_LINE)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            keep_alive = True
            while keep_alive:
                try:
                    request, keep_alive = await self._read(reader)
                except _Reject as reject:
                    await self._write(writer, reject.response, "GET", keep_alive=False)
                    return
                if request is None:
                    return
                response = await self._dispatch(request)
                keep_alive = keep_alive and response.stream is None
                await self._write(writer, response, request.method, keep_alive)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            # close() cancels connections waiting for a request: end quietly (Python
            # 3.11's stream callback logs a handler task that ends cancelled as an error).
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _line(self, reader: asyncio.StreamReader, timeout: float) -> bytes:
        try:
            return await asyncio.wait_for(reader.readline(), timeout)
        except (ValueError, asyncio.LimitOverrunError):
            raise _Reject(error_response(431, "Request line or header too long.")) from None

    async def _read(self, reader: asyncio.StreamReader) -> tuple[Request | None, bool]:
        line = await self._line(reader, self._idle)
        if not line:
            return None, False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Reject(error_response(400, "Malformed request line."))
        method, target, version = parts
        headers: dict[str, str] = {}
        while True:
            raw = await self._line(reader, 10.0)
            if raw in (b"\r\n", b"\n"):
                break
            if not raw:
                raise asyncio.IncompleteReadError(raw, None)
            if len(headers) >= MAX_HEADERS:
                raise _Reject(error_response(431, "Too many headers."))
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _Reject(error_response(400, "Malformed header line."))
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        if "transfer-encoding" in headers:
            raise _Reject(error_response(501, "Chunked request bodies are not supported."))
        body = b""
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise _Reject(error_response(400, "Invalid Content-Length."))
            size = int(length)
            if size > self._max_body:
                raise _Reject(error_response(413, f"Body larger than {self._max_body} bytes."))
            body = await asyncio.wait_for(reader.readexactly(size), 30.0)
        elif method in ("POST", "PUT", "PATCH"):
            raise _Reject(error_response(411, "Content-Length required."))
        path, _, query = target.partition("?")
        return Request(method, path, query, headers, body), keep_alive

    async def _dispatch(self, request: Request) -> Response:
        methods = self._routes.get(request.path)
        if methods is None:
            return error_response(404, f"No route {request.path}.", "not_found")
        method = "GET" if request.method == "HEAD" and "GET" in methods else request.method
        handler = methods.get(method)
        if handler is None:
            allow = ", ".join(sorted({*methods, *(["HEAD"] if "GET" in methods else [])}))
            return error_response(
                405, f"{request.method} not allowed on {request.path}.", "method_not_allowed",
                (("Allow", allow),),
            )  # fmt: skip
        try:
            return await handler(request)
        except Exception:
            self._log.exception("admin handler %s %s failed", request.method, request.path)
            return error_response(500, "Internal error in the admin server.", "internal_error")

    async def _write(
        self, writer: asyncio.StreamWriter, response: Response, method: str, keep_alive: bool
    ) -> None:
        reason = HTTPStatus(response.status).phrase
        stream = response.stream
        lines = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            *(() if stream is not None else (f"Content-Length: {len(response.body)}",)),
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
            "Cache-Control: no-store",
            *(f"{k}: {v}" for k, v in response.headers),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD":
            writer.write(response.body)
        await writer.drain()
        if stream is not None:
            try:
                if method != "HEAD":
                    async for chunk in stream:
                        writer.write(chunk)
                        await writer.drain()
            finally:
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()
