"""The admin HTTP port: health, readiness, metrics, explain, config.

``AdminServer`` takes everything it serves as arguments, so the same class runs in a
single-process server (metrics of this process) and in the parent of N workers
(metrics aggregated from the workers' sockets, see ``extproc.telemetry.workers``):

- ``GET /healthz``: 200 while the process runs (liveness; no dependency is checked).
- ``GET /readyz``: the ``ready`` callable (``Runtime.ready``: engines built, state
  reachable) gives named checks; 200 when all pass, else 503, with each check in the
  body. A check that raises or outlasts ``check_timeout_s`` makes the process unready.
- ``GET /metrics``: Prometheus text from the ``metrics`` callable.
- ``POST /v1/explain``: ``{"path": "/v1/chat/completions", "headers": {...}, "body": {...}}``
  goes through ``parse_request`` and ``decide`` under the current snapshot, with the
  state store behind ``ReadOnlyState`` (no budget charged, no session pinned); the
  full decision comes back and nothing is forwarded, logged or counted.
- ``GET /v1/config``: the served config version and a redacted view of the config and
  of the process settings.
- ``GET /dashboard`` (and ``/dashboard/api/*``): the read-only operator dashboard
  (``extproc.dashboard``), under the same access rule as explain and config.

Explain and config are guarded (bearer token, or loopback only) and explain is bounded
(body size, concurrency, time): see ``extproc.server.admin_access``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from extproc.api.errors import ApiError
from extproc.api.openai import ParsedRequest, parse_request
from extproc.api.paths import match_endpoint
from extproc.dashboard.routes import Dashboard
from extproc.decide import decide
from extproc.explain import why
from extproc.server.admin_access import AdminAccess, Guard, Slots, busy_response
from extproc.server.admin_http import (
    Handler,
    HttpServer,
    Request,
    Response,
    error_response,
    json_response,
)
from extproc.server.admin_state import ReadOnlyState
from extproc.server.admin_views import config_view, decision_view, request_view
from extproc.telemetry.prometheus import CONTENT_TYPE

if TYPE_CHECKING:
    from extproc.runtime import Runtime
    from extproc.telemetry.core import Telemetry

ReadyCheck = Callable[[], Awaitable[Mapping[str, bool]]]
MetricsSource = Callable[[], Awaitable[bytes]]


def local_metrics(telemetry: Telemetry) -> MetricsSource:
    """``/metrics`` of this process alone (single-process serving)."""

    async def source() -> bytes:
        return telemetry.prometheus_text()

    return source


class AdminServer:
    """Serve the admin routes for ``runtime`` on ``host:port``; ``start``, then ``close``.

    ``runtime`` may be None (a parent process that does not decide): explain and
    config then answer 503. ``ready`` defaults to ``runtime.ready``; without either,
    ``/readyz`` answers 200 (nothing to wait for). ``access`` defaults to the runtime's
    settings (token, explain bounds); ``explain_slots`` counts explains in flight.
    """

    def __init__(
        self,
        runtime: Runtime | None,
        *,
        metrics: MetricsSource,
        ready: ReadyCheck | None = None,
        check_timeout_s: float = 2.0,
        log: logging.Logger | None = None,
        access: AdminAccess | None = None,
    ) -> None:
        self._runtime = runtime
        if access is None:
            access = AdminAccess.from_settings(runtime.settings) if runtime else AdminAccess()
        self._access = access
        self._guard = Guard(access, "127.0.0.1")
        self.explain_slots = Slots(access.explain_concurrency)
        self._metrics = metrics
        self._ready = ready if ready is not None else (runtime.ready if runtime else None)
        self._check_timeout = check_timeout_s
        self._log = log or logging.getLogger("routeiq.admin")
        # /dashboard: same access rule (read at each request: start() rebinds the guard)
        dashboard = Dashboard(
            runtime, metrics, refusal=lambda r: self._guard.refusal(r), explain=self._explain
        )
        self._http = HttpServer(
            {
                "/healthz": {"GET": self._healthz},
                "/readyz": {"GET": self._readyz},
                "/metrics": {"GET": self._metrics_route},
                "/v1/explain": {"POST": self._guarded(self._explain)},
                "/v1/config": {"GET": self._guarded(self._config)},
                **dashboard.routes(),
            },
            max_body_bytes=access.explain_max_bytes,
            log=self._log,
        )
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (``settings.admin_host``/``admin_port``); the bound port."""
        self._guard = Guard(self._access, host)
        self.port = await self._http.start(host, port)
        self._log.info("routeiq admin listening on %s:%d", host, self.port)
        if self._guard.disabled:
            self._log.warning(
                "admin port bound to %s (not loopback) without ROUTEIQ_ADMIN_TOKEN: "
                "/v1/explain, /v1/config and /dashboard are disabled, probes and /metrics "
                "stay open",
                host or "all addresses",
            )
        return self.port

    async def close(self) -> None:
        await self._http.close()

    # -- routes -------------------------------------------------------------------------

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            refusal = self._guard.refusal(request)
            return refusal if refusal is not None else await handler(request)

        return guarded

    async def _healthz(self, _: Request) -> Response:
        return json_response(200, {"status": "ok"})

    async def _readyz(self, _: Request) -> Response:
        checks: dict[str, bool] = {}
        if self._ready is not None:
            try:
                checks = dict(await asyncio.wait_for(self._ready(), self._check_timeout))
            except Exception as exc:
                checks = {"checks_completed": False}
                self._log.warning("readiness check failed: %r", exc)
        ready = all(checks.values())
        return json_response(200 if ready else 503, {"ready": ready, "checks": checks})

    async def _metrics_route(self, _: Request) -> Response:
        return Response(200, await self._metrics(), content_type=CONTENT_TYPE)

    async def _config(self, _: Request) -> Response:
        runtime = self._runtime
        if runtime is None:
            return error_response(503, "This process holds no config.", "no_runtime")
        return json_response(200, config_view(runtime.snapshot, runtime.settings))

    async def _explain(self, request: Request) -> Response:
        runtime = self._runtime
        if runtime is None:
            return error_response(503, "This process cannot decide.", "no_runtime")
        slots = self.explain_slots
        if not slots.acquire():
            return busy_response(slots.size)
        try:
            return await asyncio.wait_for(
                self._explain_now(runtime, request.body), self._access.explain_timeout_s
            )
        except TimeoutError:
            return error_response(503, "The explain took too long.", "explain_timeout")
        finally:
            slots.release()

    async def _explain_now(self, runtime: Runtime, raw: bytes) -> Response:
        """One explain: the JSON work in a thread (off the serving loop), then decide."""
        snapshot = runtime.snapshot
        parsed = await asyncio.to_thread(_parse_envelope, raw, snapshot.spec.path_prefix)
        if isinstance(parsed, Response):
            return parsed
        state = ReadOnlyState(runtime.state) if runtime.state is not None else None
        decision = await decide(parsed, snapshot, state=state)
        return json_response(
            200,
            {
                "forwarded": False,
                "state": "read-only" if state is not None else "none",
                "config_version": snapshot.version,
                "request": request_view(parsed),
                "decision": decision_view(decision),
                "why": why(decision, snapshot),
            },
        )


def _parse_envelope(raw: bytes, prefix: str) -> ParsedRequest | Response:
    """The explain envelope parsed as the ext_proc server would parse the request."""
    envelope = _envelope(raw)
    if isinstance(envelope, Response):
        return envelope
    path, headers, body = envelope
    endpoint = match_endpoint(path, prefix)
    if endpoint is None:
        return error_response(
            400,
            f"'{path[:120]}' is not an OpenAI inference path under '{prefix}'.",
            "not_inference_path",
        )
    try:
        return parse_request(endpoint, "POST", path, headers, orjson.dumps(body))
    except ApiError as error:
        return json_response(
            error.status,
            {"forwarded": False, "stage": "parse", "error": orjson.loads(error.body())},
        )


def _envelope(raw: bytes) -> tuple[str, dict[str, str], dict[str, Any]] | Response:
    """``(path, lower-cased headers, body)`` of an explain request, or the 400 to answer."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return error_response(400, f"The body is not valid JSON: {exc}.", "invalid_json")
    if not isinstance(doc, dict):
        return error_response(400, "Expected {path, headers, body}.", "invalid_envelope")
    path = doc.get("path", "/v1/chat/completions")
    headers = doc.get("headers", {})
    body = doc.get("body")
    if not isinstance(path, str):
        return error_response(400, "'path' must be a string.", "invalid_envelope")
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        return error_response(400, "'headers' must map names to strings.", "invalid_envelope")
    if not isinstance(body, dict):
        return error_response(400, "'body' must be the OpenAI request object.", "invalid_envelope")
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.setdefault(":method", "POST")
    lowered.setdefault(":path", path)
    return path, lowered, body
