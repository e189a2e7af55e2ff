"""Odd spellings of OpenAI paths through the real Envoy: decided or refused, never forwarded.

A policy refuses ``gpt-4o`` on ``/v1/chat/completions``. Every other spelling of that
path a client can send (percent-encoding, dot segments, doubled slashes, case,
``;params``, encoded slashes, a trailing ``?``...) must end the same way or be refused
outright: the request never reaches a backend undecided. Paths under the prefix that
RouteIQ does not serve are refused (404/405) unless a ``spec.passthroughPaths`` rule
names them, and paths outside the prefix still pass untouched.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.configs import embedded_policy, write_config
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
DENY_MODULE = """package routeiq

import rego.v1

violations["no-gpt-4o"] := "gpt-4o is not allowed on this gateway." if {
	input.routeiq.model == "gpt-4o"
}
"""

# Spellings of /v1/chat/completions (and of the prefix) that a client can send.
VARIANTS = [
    "/v1/%63hat/completions",
    "/v1/chat/%63ompletions",
    "/%76%31/chat/completions",
    "/v1//chat/completions",
    "//v1/chat/completions",
    "/v1/chat//completions",
    "/v1/./chat/completions",
    "/v1/x/../chat/completions",
    "/v1/chat/x/%2e%2e/completions",
    "/v1/chat/completions/",
    "/v1/chat/completions/.",
    "/v1/chat%2Fcompletions",
    "/v1/chat%2fcompletions",
    "/v1%2Fchat/completions",
    "/v1/chat%5Ccompletions",
    "/v1/chat\\completions",
    "/v1/CHAT/completions",
    "/v1/Chat/Completions",
    "/V1/chat/completions",
    "/v1/chat/completions;x=1",
    "/v1/chat;x=1/completions",
    "/v1;x/chat/completions",
    "/v1/chat/completions?",
    "/v1/chat/completions?a=b",
    "/v1/chat/completions%3Fa=b",
    "/v1/chat/completions%20",
    "/v1/chat/completions%00",
    "/v1/chat/completions%252F",
    "/x/../v1/chat/completions",
]


def chat(model: str) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()


def send(
    port: int, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with ``target`` sent byte for byte (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        hdrs = {"content-type": "application/json", **(headers or {})}
        conn.request(method, target, body=body or None, headers=hdrs)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo_backends(workdir: Path) -> Iterator[Backends]:
    """The three demo backends only (no LiteLLM: these tests never route there)."""
    result = Backends(ports={})
    try:
        for cluster, name in (("demo_eco", "eco"), ("demo_premium", "premium")):
            proc, port = start_backend(name, workdir)
            result.procs.append(proc)
            result.ports[cluster] = port
        yield result
    finally:
        for p in result.procs:
            p.stop()


@pytest.fixture(scope="module")
def stack(
    workdir: Path, demo_backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyStack]:
    tmp = tmp_path_factory.mktemp("paths")
    (tmp / "deny.rego").write_text(DENY_MODULE)
    policy = embedded_policy(modules=[str(REPO / "policies"), str(tmp / "deny.rego")])
    config = write_config(
        tmp / "c.yaml",
        policy=policy,
        passthroughPaths=[
            {"path": "models", "methods": ["GET"]},
            {"path": "files/*", "methods": ["GET", "POST"]},
        ],
    )
    with routeiq_server(config, workdir) as (_, port):
        env = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, demo_backends)
        yield env
        env.envoy.stop()


def received(backends: Backends) -> int:
    return sum(len(backends.received(c)) for c in backends.ports)


def test_the_canonical_path_is_denied(stack: EnvoyStack) -> None:
    status, _, body = send(stack.port, "POST", CHAT, chat("gpt-4o"))
    assert status == 403
    assert json.loads(body)["error"]["code"] == "policy_denied"


@pytest.mark.parametrize("target", VARIANTS)
def test_a_variant_is_decided_or_refused(
    stack: EnvoyStack, demo_backends: Backends, target: str
) -> None:
    before = received(demo_backends)
    status, headers, body = send(stack.port, "POST", target, chat("gpt-4o"))
    assert 400 <= status < 500, (status, body[:300])
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] in {"policy_denied", "invalid_path", "unknown_path"}, error
    assert received(demo_backends) == before  # nothing reached a backend


@pytest.mark.parametrize("target", VARIANTS)
def test_an_allowed_variant_is_processed_or_refused(
    stack: EnvoyStack, demo_backends: Backends, target: str
) -> None:
    """Allowed through a variant: either routed by RouteIQ (decision id, canonical path
    upstream) or refused; never the default route without a decision."""
    before = received(demo_backends)
    status, headers, body = send(stack.port, "POST", target, chat("gpt-4o-mini"))
    if status == 200:
        assert headers["x-routeiq-decision-id"]
        got = demo_backends.received("demo_eco")[-1]
        assert got["path"] == CHAT
        assert got["headers"]["x-routeiq-decision-id"] == headers["x-routeiq-decision-id"]
    else:
        assert 400 <= status < 500, (status, body[:300])
        assert received(demo_backends) == before


@pytest.mark.parametrize(
    ("method", "target", "status", "code"),
    [
        ("POST", "/v1/files/upload-ish/../../chat/completions", 403, "policy_denied"),
        ("POST", "/v1/assistants", 404, "unknown_path"),
        ("POST", "/v1/chat/completions/extra", 404, "unknown_path"),
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("DELETE", "/v1/chat/completions", 405, "method_not_allowed"),
        ("PUT", "/v1/models", 404, "unknown_path"),
        ("GET", "/v1", 404, "unknown_path"),
    ],
)
def test_unknown_paths_under_the_prefix_are_refused(
    stack: EnvoyStack, demo_backends: Backends, method: str, target: str, status: int, code: str
) -> None:
    before = received(demo_backends)
    got, headers, body = send(stack.port, method, target, chat("gpt-4o"))
    assert got == status, body[:300]
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == code
    if status == 405:
        assert headers["allow"] == "POST"
    assert received(demo_backends) == before


def test_passthrough_rules_and_outside_paths_reach_the_default_backend(
    stack: EnvoyStack, demo_backends: Backends
) -> None:
    status, headers, body = send(stack.port, "GET", "/v1/models")
    assert (status, json.loads(body)["object"]) == (200, "list")  # RouteIQ's, from the config
    assert "x-routeiq-decision-id" not in headers
    status, headers, _ = send(stack.port, "POST", "/v1/files/abc", b"{}")
    assert (status, headers["x-demo-backend"]) == (404, "eco")  # the backend's own 404
    assert demo_backends.received("demo_eco")[-1]["path"] == "/v1/files/abc"
    status, headers, _ = send(stack.port, "POST", "/other/thing", b"{}")
    assert (status, headers["x-demo-backend"]) == (404, "eco")
    assert "x-routeiq-decision-id" not in headers
