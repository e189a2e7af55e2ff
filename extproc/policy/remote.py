"""The remote engine: an OPA server asked through its REST Data API.

``POST /v1/data/<query path>`` with ``{"input": ...}`` through ``opa-python-client``'s
``AsyncOpaClient`` (aiohttp): the library has a synchronous client (requests) and an
asynchronous one; the async one runs on the server's event loop with no thread hop
and no blocked loop, so it is the one used. Its built-in retries are turned off: one
attempt bounded by ``timeoutMs`` is what the latency budget allows (Envoy's
ext_proc ``message_timeout`` is 200 ms by default), and the operator's failure mode
decides past it.

The aiohttp session belongs to the event loop that first evaluates; ``aclose()``
(on that loop) releases it. A new loop (tests) gets a new session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from opa_client import AsyncOpaClient

from extproc.policy.judge import Judge
from extproc.policy.result import PolicyResult


def _failure(exc: Exception) -> str:
    """The log detail of a failed query: what failed, never the server's own text."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return f"connection failed ({type(exc).__name__})"
    if isinstance(exc, ValueError):
        return "invalid JSON in response"
    return f"request failed ({type(exc).__name__})"


class RemoteOpaEngine:
    """Decisions from a remote OPA server; every failure goes through the failure mode.

    ``evaluate`` raises nothing but cancellation: timeouts, connection and HTTP errors,
    bad responses, an input the client cannot encode and any other client error all
    become the failure-mode result (``engine_unavailable``).

    ``ready`` is False after a failed call and True again after a successful one, so
    a readiness probe or metric can show the dependency's state.
    """

    name = "opa"

    def __init__(
        self,
        url: str,
        query: str,
        *,
        timeout_s: float,
        deny_status: int,
        dry_run: bool,
        fail_open: bool,
        token: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self._host = parts.hostname or "localhost"
        self._ssl = parts.scheme == "https"
        self._port = parts.port or (443 if self._ssl else 80)
        self._path = query.removeprefix("data.")
        self._timeout_s = timeout_s
        self._judge = Judge(
            self.name, deny_status=deny_status, dry_run=dry_run, fail_open=fail_open
        )
        self._token = token
        self._client: AsyncOpaClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Task[None] | None = None
        self.ready = True

    @property
    def url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://{self._host}:{self._port}/v1/data/{self._path.replace('.', '/')}"

    async def _session(self) -> AsyncOpaClient:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop:
            return self._client
        client = AsyncOpaClient(
            host=self._host,
            port=self._port,
            ssl=self._ssl,
            token=self._token,
            retries=0,
            timeout=self._timeout_s,
        )
        await client.__aenter__()
        self._client, self._loop = client, loop
        return client

    async def _query(self, input_doc: Mapping[str, Any]) -> Any:
        client = await self._session()
        async with asyncio.timeout(self._timeout_s):
            return await client.query_rule(input_data=dict(input_doc), package_path=self._path)

    async def evaluate(self, input_doc: Mapping[str, Any]) -> PolicyResult:
        judge, start = self._judge, time.perf_counter()
        try:
            out = await self._query(input_doc)
        except (RecursionError, TypeError) as exc:
            # The input could not be encoded (the client's JSON encoder recurses): this
            # request's fault, not the server's, so readiness is left as it was.
            return judge.failed(f"input not encodable ({type(exc).__name__})", start)
        except Exception as exc:  # the server or the connection
            self.ready = False
            return judge.failed(_failure(exc), start)
        self.ready = True
        if not isinstance(out, dict) or "result" not in out:
            return judge.undefined(start)
        return judge.answered(out["result"], start)

    async def aclose(self) -> None:
        """Close the HTTP session; call it on the loop that evaluated."""
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.close_connection()

    def close(self) -> None:
        """Best-effort synchronous close: schedules ``aclose`` on the session's loop.

        Prefer ``await aclose()``, and call it before the loop closes: a session whose
        loop is already closed cannot be closed any more, and its idle keep-alive
        socket is reported as a ResourceWarning when collected.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            self._client = self._loop = None
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._closing = loop.create_task(self.aclose())
        elif not loop.is_running():
            loop.run_until_complete(self.aclose())
        else:
            asyncio.run_coroutine_threadsafe(self.aclose(), loop)
