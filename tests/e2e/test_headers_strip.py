"""Client-sent ``x-routeiq-*`` headers through the real Envoy: never upstream, never echoed.

Only RouteIQ may set ``x-routeiq-*`` headers. Whatever a client sends under that prefix
(routing, classification, any made-up name, any letter case) must not reach a backend
and must not come back in the response, on every path: routed, passed through, refused
at the headers or the body phase, and with RouteIQ unreachable under fail-open. The
demo backend records the headers it received (``GET /__received``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from extproc.demo.processes import free_port
from tests.conftest import E2E_CONFIG
from tests.e2e.test_paths import send
from tests.fixtures.stack import (
    REPO,
    Backends,
    EnvoyStack,
    envoy_for,
    routeiq_server,
    start_backend,
)

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
SPOOF = "spoofed-by-client"
SPOOFED = {
    "x-routeiq-cluster": "demo_premium",
    "x-routeiq-backend": SPOOF,
    "x-routeiq-decision-id": SPOOF,
    "x-routeiq-category": SPOOF,
    "X-RouteIQ-Tier": SPOOF,
    "x-routeiq-confidential": SPOOF,
    "x-routeiq-anything": SPOOF,
    "x-routeiq-": SPOOF,
    "x-routeiq-profiles": SPOOF,
    "x-routeiq-profile": "eco",  # a client hint RouteIQ reads, then strips
}
FAIL_OPEN = REPO / "envoy" / "routeiq-fail-open.yaml"
FAIL_CLOSED = REPO / "envoy" / "routeiq-fail-closed.yaml"


def chat(model: str = "gpt-4o-mini") -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture(scope="module")
def eco_backend(workdir: Path) -> Iterator[Backends]:
    proc, port = start_backend("eco", workdir)
    yield Backends(ports={"demo_eco": port}, procs=[proc])
    proc.stop()


@pytest.fixture(scope="module")
def open_stack(workdir: Path, eco_backend: Backends) -> Iterator[EnvoyStack]:
    """Fail-open Envoy in front of a running RouteIQ."""
    with routeiq_server(E2E_CONFIG, workdir) as (_, port):
        env = envoy_for(FAIL_OPEN, workdir, port, eco_backend)
        yield env
        env.envoy.stop()


@pytest.fixture(scope="module", params=[FAIL_OPEN, FAIL_CLOSED], ids=["fail-open", "fail-closed"])
def down_stack(
    request: pytest.FixtureRequest, workdir: Path, eco_backend: Backends
) -> Iterator[EnvoyStack]:
    """An Envoy whose RouteIQ cluster points at a port nobody listens on."""
    env = envoy_for(request.param, workdir, free_port(), eco_backend)
    yield env
    env.envoy.stop()


def assert_clean_upstream(backends: Backends, routed: bool) -> None:
    """The last request the backend got carries no client ``x-routeiq-*`` header: none at
    all when RouteIQ did not route it, only the ones RouteIQ set when it did."""
    got = backends.received("demo_eco")[-1]["headers"]
    routeiq = {k: v for k, v in got.items() if k.startswith("x-routeiq-")}
    if not routed:
        assert routeiq == {}
        return
    assert SPOOF not in routeiq.values(), routeiq
    assert not set(routeiq) & CLIENT_ONLY, routeiq
    assert routeiq["x-routeiq-cluster"] == "demo_eco"
    assert routeiq["x-routeiq-backend"] == "eco"


def assert_not_echoed(headers: dict[str, str]) -> None:
    assert SPOOF not in headers.values(), headers
    assert "x-routeiq-anything" not in headers
    assert "x-routeiq-confidential" not in headers
    assert "x-routeiq-profile" not in headers


CLIENT_ONLY = {
    "x-routeiq-anything",
    "x-routeiq-confidential",
    "x-routeiq-",
    "x-routeiq-profile",
    "x-routeiq-profiles",
}


def test_routed_request(open_stack: EnvoyStack, eco_backend: Backends) -> None:
    status, headers, raw = send(open_stack.port, "POST", CHAT, chat(), SPOOFED)
    assert status == 200, raw[:300]
    assert headers["x-demo-backend"] == "eco"
    assert_clean_upstream(eco_backend, routed=True)
    assert_not_echoed(headers)


def test_client_hint_still_reaches_routeiq(open_stack: EnvoyStack, eco_backend: Backends) -> None:
    """x-routeiq-profile survives Envoy's early strip so RouteIQ can read it."""
    status, headers, raw = send(
        open_stack.port, "POST", CHAT, chat("auto"), {"x-routeiq-profile": "eco"}
    )
    assert status == 200, raw[:300]
    assert headers["x-routeiq-backend"] == "eco"
    assert_clean_upstream(eco_backend, routed=True)


def test_request_outside_the_prefix(open_stack: EnvoyStack, eco_backend: Backends) -> None:
    status, headers, _ = send(open_stack.port, "POST", "/not-openai/x", b"{}", SPOOFED)
    assert (status, headers["x-demo-backend"]) == (404, "eco")
    assert eco_backend.received("demo_eco")[-1]["path"] == "/not-openai/x"
    assert_clean_upstream(eco_backend, routed=False)
    assert_not_echoed(headers)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (chat(), "text/plain", 415),  # refused at the request-headers phase
        (chat("no-such-model"), "application/json", 404),  # refused at the body phase
        (b"{", "application/json", 400),
    ],
    ids=["headers-phase", "body-phase", "bad-json"],
)
def test_refusals_echo_nothing(
    open_stack: EnvoyStack, eco_backend: Backends, body: bytes, content_type: str, status: int
) -> None:
    before = len(eco_backend.received("demo_eco"))
    got, headers, raw = send(
        open_stack.port, "POST", CHAT, body, {**SPOOFED, "content-type": content_type}
    )
    assert got == status, raw[:200]
    assert json.loads(raw)["error"]["code"]
    assert_not_echoed(headers)
    assert len(eco_backend.received("demo_eco")) == before


def test_routeiq_unreachable(down_stack: EnvoyStack, eco_backend: Backends) -> None:
    """Fail-open: through, unprocessed, with no x-routeiq-* header at all. Fail-closed: an
    OpenAI-format 503 saying the routing service is unavailable (issue 13 item 4)."""
    before = len(eco_backend.received("demo_eco"))
    status, headers, raw = send(down_stack.port, "POST", CHAT, chat("gpt-4o"), SPOOFED)
    assert_not_echoed(headers)
    if "x-demo-backend" in headers:  # fail-open
        assert status == 200
        assert_clean_upstream(eco_backend, routed=False)
        assert eco_backend.received("demo_eco")[-1]["body"]["model"] == "gpt-4o"
    else:
        assert status == 503
        assert headers["content-type"] == "application/json"
        error = json.loads(raw)["error"]
        assert error["code"] == "routing_unavailable"
        assert error["type"] == "service_unavailable"
        assert "routing service is unavailable" in error["message"]
        assert "ext_proc" not in raw.decode() and "gRPC" not in raw.decode()
        assert len(eco_backend.received("demo_eco")) == before
