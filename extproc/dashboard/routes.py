"""The dashboard's routes on the admin port, behind the admin access rule.

Every route here (page, assets, data) passes the same check as ``/v1/explain``
(``extproc.server.admin_access.Guard``): open when the admin port is bound to
loopback without a token, the token required when one is configured, disabled when
bound elsewhere without one. A browser cannot add a bearer header when it opens a
page, so these routes also take the token as the password of HTTP Basic
authentication (any user name) and challenge with ``WWW-Authenticate: Basic``: the
browser asks once, then sends it with every request of the page. ``curl -H
'Authorization: Bearer ...'`` works as on the other guarded routes.

Read-only: the summary reads metrics text, the reload history and (through
``limit_status``) budget levels; the playground posts to the admin server's own
explain handler (``POST /v1/explain``'s code: read-only state, nothing forwarded,
logged, counted or charged).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from extproc.dashboard.assets import SECURITY_HEADERS, load_assets
from extproc.dashboard.feed import LiveFeed, budget_levels
from extproc.dashboard.summary import summarize
from extproc.server.admin_http import Handler, Request, Response, error_response, json_response
from extproc.state.types import StateUnavailable

if TYPE_CHECKING:
    from extproc.runtime import Runtime

Refusal = Callable[[Request], Response | None]
MAX_STREAMS = 8
PER_WORKER = (
    "The live stream is per process: with --workers N the supervisor has no decisions of "
    "its own (the panels above are summed over all workers)."
)
_BASIC_CHALLENGE = ("WWW-Authenticate", 'Basic realm="routeiq-admin", charset="UTF-8"')


def basic_as_bearer(request: Request) -> Request:
    """``request`` with ``Authorization: Basic b64(user:token)`` read as ``Bearer token``."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return request
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return request
    headers = {**request.headers, "authorization": f"Bearer {decoded.partition(':')[2]}"}
    return dataclasses.replace(request, headers=headers)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")[:-6] + "Z"


class Dashboard:
    """Serves ``/dashboard`` for ``runtime`` (None in a supervisor) from ``metrics``.

    ``refusal`` is the admin server's access check; ``explain`` its explain handler.
    """

    def __init__(
        self,
        runtime: Runtime | None,
        metrics: Callable[[], Awaitable[bytes]],
        *,
        refusal: Refusal,
        explain: Handler,
    ) -> None:
        self._runtime = runtime
        self._metrics = metrics
        self._refusal = refusal
        self._explain = explain
        self._assets = load_assets()
        log = runtime.decision_log if runtime is not None else None
        self.feed = LiveFeed(log, unavailable=PER_WORKER)

    def routes(self) -> dict[str, Mapping[str, Handler]]:
        page = self._guarded(self._asset("index.html"))
        return {
            "/dashboard": {"GET": page},
            "/dashboard/": {"GET": page},
            "/dashboard/app.js": {"GET": self._guarded(self._asset("app.js"))},
            "/dashboard/app.css": {"GET": self._guarded(self._asset("app.css"))},
            "/dashboard/api/summary": {"GET": self._guarded(self._summary)},
            "/dashboard/api/stream": {"GET": self._guarded(self._stream)},
            "/dashboard/api/explain": {"POST": self._guarded(self._explain)},
        }

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            refusal = self._refusal(basic_as_bearer(request))
            if refusal is None:
                return await handler(request)
            if refusal.status != 401:
                return refusal
            headers = tuple(h for h in refusal.headers if h[0].lower() != "www-authenticate")
            return dataclasses.replace(refusal, headers=(*headers, _BASIC_CHALLENGE))

        return guarded

    def _asset(self, name: str) -> Handler:
        asset = self._assets[name]

        async def serve(_: Request) -> Response:
            return Response(200, asset.body, asset.content_type, SECURITY_HEADERS)

        return serve

    async def _summary(self, _: Request) -> Response:
        doc: dict[str, Any] = summarize(await self._metrics())
        doc["generated"] = _iso(time.time())
        doc["reload_history"] = None
        doc["budgets"] = None
        runtime = self._runtime
        if runtime is not None:
            doc["reload_history"] = self._reload_history(runtime)
            doc["budgets"] = await self._budgets(runtime)
        return json_response(200, doc)

    @staticmethod
    def _reload_history(runtime: Runtime) -> list[dict[str, Any]]:
        telemetry = runtime.telemetry
        if telemetry is None:
            return []
        return [
            {"time": _iso(ts), "event": event, "version": version}
            for ts, event, version in telemetry.reload_history
        ]

    @staticmethod
    async def _budgets(runtime: Runtime) -> list[dict[str, Any]]:
        if runtime.state is None or runtime.decision_log is None:
            return []
        try:
            return await budget_levels(runtime.decision_log, runtime.state)
        except StateUnavailable:
            return []

    async def _stream(self, _: Request) -> Response:
        if self.feed.streams >= MAX_STREAMS:
            return error_response(
                429, f"At most {MAX_STREAMS} live streams at once.", "too_many_streams",
                (("Retry-After", "5"),),
            )  # fmt: skip
        return Response(
            200,
            content_type="text/event-stream; charset=utf-8",
            headers=(("X-Accel-Buffering", "no"),),
            stream=self.feed.events(),
        )
