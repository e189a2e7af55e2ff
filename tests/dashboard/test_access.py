"""The dashboard sits behind the admin port's access rule.

With ``ROUTEIQ_ADMIN_TOKEN`` set every dashboard route (page, assets, data, stream,
playground) needs the token, as a bearer header or as the HTTP Basic password a
browser asks for; bound beyond loopback without a token the routes are disabled
(403) while probes and /metrics stay open.
"""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from extproc.demo.processes import free_port, wait_for_port
from extproc.server.admin import AdminServer
from extproc.server.admin_access import AdminAccess
from tests.dashboard.browser import chromium, console_errors, wait_for
from tests.dashboard.conftest import DASHBOARD_CONFIG, TOKEN
from tests.fixtures.stack import routeiq_server

pytestmark = pytest.mark.e2e

ROUTES = ("/dashboard", "/dashboard/app.js", "/dashboard/api/summary", "/dashboard/api/stream")


def get(
    url: str, auth: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    explain = b'{"body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}}'
    data = explain if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method)
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            head = r.readline() if "stream" in url else r.read()
            return r.status, dict(r.headers.items()), head
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


def basic(password: str) -> str:
    return "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {"ROUTEIQ_ADMIN_PORT": str(port), "ROUTEIQ_ADMIN_TOKEN": TOKEN,
           "ROUTEIQ_DECISION_LOG": "off"}  # fmt: skip
    with routeiq_server(DASHBOARD_CONFIG, tmp_path_factory.mktemp("access"), env) as (proc, _):
        wait_for_port(port, 30, proc.proc)
        yield f"127.0.0.1:{port}"


@pytest.mark.parametrize("route", [*ROUTES, "/dashboard/api/explain"])
def test_token_required_on_every_dashboard_route(admin: str, route: str) -> None:
    method = "POST" if route.endswith("explain") else "GET"
    url = f"http://{admin}{route}"
    status, headers, _ = get(url, method=method)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")  # the browser asks for it
    assert get(url, "Bearer not-the-token", method)[0] == 401
    assert get(url, basic("not-the-token"), method)[0] == 401
    assert get(url, f"Bearer {TOKEN}", method)[0] == 200
    assert get(url, basic(TOKEN), method)[0] == 200


def test_probes_and_metrics_stay_open(admin: str) -> None:
    for route in ("/healthz", "/metrics"):
        assert get(f"http://{admin}{route}")[0] == 200


def test_browser_signs_in_with_the_token(admin: str) -> None:
    with chromium() as driver:
        driver.get(f"http://{admin}/dashboard")
        assert driver.title != "RouteIQ dashboard"  # 401: no page without the token
        console_errors(driver)  # the 401 itself is logged; start counting after it
        driver.get(f"http://admin:{TOKEN}@{admin}/dashboard")
        assert driver.title == "RouteIQ dashboard"
        wait_for(driver, lambda d: d.find_element("id", "status").text == "live")
        wait_for(driver, lambda d: d.find_element("id", "version").text not in ("", "…"))
        assert console_errors(driver) == []


async def test_disabled_beyond_loopback_without_token() -> None:
    async def metrics() -> bytes:
        return b""

    server = AdminServer(None, metrics=metrics, access=AdminAccess(token=None))
    port = await server.start("0.0.0.0", 0)
    try:
        for route in ROUTES:
            status, _, body = await asyncio.to_thread(get, f"http://127.0.0.1:{port}{route}")
            assert status == 403 and b"admin_token_not_configured" in body
        assert (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/healthz"))[0] == 200
    finally:
        await server.close()
