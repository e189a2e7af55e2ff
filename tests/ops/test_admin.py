"""The admin port over real HTTP: health, readiness, metrics, explain, config, limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.runtime import Runtime
from extproc.server.admin import AdminServer, local_metrics
from extproc.server.admin_access import is_loopback
from extproc.server.admin_views import redact
from extproc.state import build_state_store
from tests.ops.conftest import DEMO_CONFIG, REPO, Captured, chat, make_settings

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


class Admin:
    def __init__(self, server: AdminServer, port: int) -> None:
        self.server = server
        self.port = port
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def trusted_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshot]:
    """The demo config with x-team declared trusted (as if the mesh's authn set it)."""
    doc = yaml.safe_load(DEMO_CONFIG.read_text())
    doc["spec"]["identity"] = {"trustedHeaders": {"team": "x-team"}}
    doc["spec"]["policy"]["modules"] = [str(REPO / "policies")]
    doc["spec"]["policy"]["data"] = [str(REPO / "policies" / "data")]
    path = tmp_path_factory.mktemp("admin") / "routeiq.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    snap = build_snapshot(path)
    yield snap
    snap.close()


@pytest.fixture
async def trusted_runtime(trusted_snapshot: Snapshot) -> AsyncIterator[Runtime]:
    settings = make_settings()
    yield Runtime(settings=settings, snapshot=trusted_snapshot, state=build_state_store(settings))


@pytest.fixture
async def admin(trusted_runtime: Runtime, captured: Captured) -> AsyncIterator[Admin]:
    server = AdminServer(trusted_runtime, metrics=local_metrics(captured.telemetry))
    port = await server.start("127.0.0.1", 0)
    a = Admin(server, port)
    yield a
    await a.client.aclose()
    await server.close()


async def test_healthz_and_readyz(admin: Admin) -> None:
    r = await admin.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await admin.client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["ready"] is True
    assert r.json()["checks"] and all(r.json()["checks"].values())


@pytest.mark.parametrize("failure", ["false", "raises", "hangs"])
async def test_readyz_503_when_a_check_fails(runtime: Runtime, failure: str) -> None:
    async def ready() -> Mapping[str, bool]:
        if failure == "raises":
            raise ConnectionError("redis down")
        if failure == "hangs":
            await asyncio.sleep(10)
        return {"policy": True, "router": True, "state": False}

    async def no_metrics() -> bytes:
        return b""

    server = AdminServer(runtime, metrics=no_metrics, ready=ready, check_timeout_s=0.2)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/readyz")
        assert r.status_code == 503
        assert r.json()["ready"] is False
        if failure == "false":
            assert r.json()["checks"]["state"] is False
    finally:
        await server.close()


async def test_metrics_scraped_and_parsed(
    admin: Admin, runtime: Runtime, captured: Captured
) -> None:
    request = chat("gpt-4o")
    decision = await runtime.decide(request)
    captured.telemetry.record_decision(decision, request, 0.001, {})
    captured.telemetry.record_reload(False)
    r = await admin.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    found = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert found["routeiq_decisions"].samples[0].value == 1
    assert found["routeiq_config_reloads"].samples[0].labels == {"result": "failure"}
    assert found["routeiq_decision_duration_seconds"].type == "histogram"
    head = await admin.client.head("/metrics")
    assert head.status_code == 200 and head.content == b""


async def explain(admin: Admin, envelope: dict[str, Any]) -> httpx.Response:
    return await admin.client.post("/v1/explain", json=envelope)


async def test_explain_returns_the_full_decision(admin: Admin, trusted_runtime: Runtime) -> None:
    runtime = trusted_runtime
    r = await explain(admin, {
        "path": "/v1/chat/completions",
        "headers": {"X-Team": "search", "Authorization": "Bearer sk-secret-1234567890"},
        "body": {"model": "auto", "messages": [
            {"role": "user", "content": "Prove that the square root of 2 is irrational."}]},
    })  # fmt: skip
    assert r.status_code == 200
    doc = r.json()
    assert doc["forwarded"] is False
    assert doc["config_version"] == runtime.snapshot.version
    d = doc["decision"]
    assert d["outcome"] == "routed"
    assert d["backend"] in runtime.snapshot.backends
    assert d["profile"] == "auto"
    assert d["category"] and d["tier"] and d["classification"]["scores"]
    assert d["policy"]["engine"] == "embedded" and d["policy"]["allowed"] is True
    assert isinstance(d["excluded"], dict)
    assert d["reasons"][0] == "profile auto"
    assert d["explain"]["caller"]["team"] == "search"
    assert "sk-secret" not in r.text
    assert doc["request"]["endpoint"] == "chat/completions"


async def test_explain_of_refusals_and_bad_envelopes(admin: Admin) -> None:
    r = await explain(admin, {"body": {**CHAT, "model": "no-such"}})
    assert r.status_code == 200
    assert r.json()["decision"]["outcome"] == "denied"
    assert r.json()["decision"]["error"]["status"] == 404

    r = await explain(admin, {"path": "/v1/models", "body": CHAT})
    assert r.status_code == 400 and r.json()["error"]["code"] == "not_inference_path"
    r = await explain(admin, {"body": {"model": "gpt-4o"}})  # no messages
    assert r.status_code == 400 and r.json()["stage"] == "parse"
    r = await explain(admin, {"headers": {"a": 1}, "body": CHAT})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_envelope"
    r = await admin.client.post("/v1/explain", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


async def test_explain_never_charges_budgets(admin: Admin, trusted_runtime: Runtime) -> None:
    runtime = trusted_runtime
    # The demo config allows 3 requests per minute per team.
    envelope = {"headers": {"x-team": "budget-test"}, "body": CHAT}
    for _ in range(5):
        r = await explain(admin, envelope)
        assert r.json()["decision"]["outcome"] == "routed"
        assert r.json()["state"] == "read-only"
    outcomes = [
        (await runtime.decide(chat("gpt-4o", headers={"x-team": "budget-test"}))).outcome.value
        for _ in range(4)
    ]
    assert outcomes == ["routed", "routed", "routed", "denied"]
    # Once the budget is spent, explain tells so (still without charging).
    r = await explain(admin, envelope)
    assert r.json()["decision"]["error"]["status"] == 429


async def test_config_is_redacted(snapshot: Any) -> None:
    settings = make_settings(redis_url="redis://user:hunter2@redis:6379/0")
    runtime = Runtime(settings=settings, snapshot=snapshot)

    async def no_metrics() -> bytes:
        return b""

    server = AdminServer(runtime, metrics=no_metrics)
    port = await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{port}/v1/config")
    finally:
        await server.close()
    assert r.status_code == 200
    doc = r.json()
    assert doc["version"] == snapshot.version
    assert doc["config"]["spec"]["backends"][0]["name"] == "eco"
    assert doc["config"]["spec"]["policy"]["engine"] == "embedded"
    assert doc["settings"]["redis_url"] == "[redacted]"
    assert "hunter2" not in r.text


def test_redaction_rules() -> None:
    doc = {
        "policy": {"opa": {"url": "http://opa:8181", "tokenFile": "/var/run/opa/token",
                           "timeoutMs": 100}},
        "embedding": {"maxTokens": 128},
        "identity": {"apiKeyHeaders": ["authorization", "x-api-key"]},
        "limits": [{"tokensPerWindow": 10}],
        "endpoint": "https://bob:pa55@collector:4317",
        "clientSecret": "s3cr3t",
        "nothing": None,
    }  # fmt: skip
    assert redact(doc) == {
        "policy": {"opa": {"url": "http://opa:8181", "tokenFile": "[redacted]",
                           "timeoutMs": 100}},
        "embedding": {"maxTokens": 128},
        "identity": {"apiKeyHeaders": ["authorization", "x-api-key"]},
        "limits": [{"tokensPerWindow": 10}],
        "endpoint": "https://[redacted]@collector:4317",
        "clientSecret": "[redacted]",
        "nothing": None,
    }  # fmt: skip


async def raw(port: int, data: bytes, reads: int = 1) -> list[bytes]:
    """Send ``data`` on one connection and read ``reads`` responses (by Content-Length)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out = []
    try:
        writer.write(data)
        await writer.drain()
        for _ in range(reads):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            out.append(head + await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()
    return out


async def test_keep_alive_and_limits(admin: Admin) -> None:
    two = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /readyz HTTP/1.1\r\nHost: a\r\n\r\n"
    first, second = await raw(admin.port, two, reads=2)
    assert first.startswith(b"HTTP/1.1 200") and b"Connection: keep-alive" in first
    assert second.startswith(b"HTTP/1.1 200") and b'"ready"' in second

    (r,) = await raw(admin.port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert b"Connection: close" in r

    (r,) = await raw(admin.port, b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 431") and b'"error"' in r

    big = b"POST /v1/explain HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"
    (r,) = await raw(admin.port, big)
    assert r.startswith(b"HTTP/1.1 413")

    (r,) = await raw(admin.port, b"POST /v1/explain HTTP/1.1\r\nHost: a\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 411")

    (r,) = await raw(admin.port, b"NONSENSE\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400")

    r404 = await admin.client.get("/nope")
    assert r404.status_code == 404 and r404.json()["error"]["code"] == "not_found"
    r405 = await admin.client.delete("/healthz")
    assert r405.status_code == 405 and r405.headers["allow"] == "GET, HEAD"
    assert (await admin.client.get("/v1/explain")).status_code == 405


# -- access: bearer token off loopback, explain limits ----------------------------------

TOKEN = "admin-token-for-tests-0123456789"


async def _serve(snapshot: Snapshot, host: str, **settings: Any) -> tuple[AdminServer, int]:
    """An admin server whose access rules come from the runtime's settings."""

    async def no_metrics() -> bytes:
        return b"# no metrics\n"

    runtime = Runtime(settings=make_settings(**settings), snapshot=snapshot)
    server = AdminServer(runtime, metrics=no_metrics)
    return server, await server.start(host, 0)


async def test_off_loopback_the_token_guards_explain_and_config(trusted_snapshot: Snapshot) -> None:
    server, port = await _serve(trusted_snapshot, "0.0.0.0", admin_token=TOKEN)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for path in ("/healthz", "/readyz", "/metrics"):  # probes and scrapes stay open
                assert (await client.get(path)).status_code == 200, path
            for auth in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"):
                headers = {"authorization": auth} if auth else {}
                r = await client.get("/v1/config", headers=headers)
                assert r.status_code == 401, auth
                assert r.json()["error"]["code"] == "invalid_admin_token"
                assert r.headers["www-authenticate"].startswith("Bearer")
                assert TOKEN not in r.text
                r = await client.post("/v1/explain", json={"body": CHAT}, headers=headers)
                assert r.status_code == 401, auth
            good = {"authorization": f"Bearer {TOKEN}"}
            r = await client.get("/v1/config", headers=good)
            assert r.status_code == 200
            assert TOKEN not in r.text and r.json()["settings"]["admin_token"] == "[redacted]"
            r = await client.post("/v1/explain", json={"body": CHAT}, headers=good)
            assert r.status_code == 200 and r.json()["decision"]["outcome"] == "routed"
    finally:
        await server.close()


async def test_off_loopback_without_a_token_explain_and_config_are_off(
    trusted_snapshot: Snapshot, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="routeiq.admin"):
        server, port = await _serve(trusted_snapshot, "0.0.0.0")
    try:
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "ROUTEIQ_ADMIN_TOKEN" in warnings[0]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/readyz")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
            r = await client.get("/v1/config", headers={"authorization": "Bearer anything"})
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "admin_token_not_configured"
            r = await client.post("/v1/explain", json={"body": CHAT})
            assert r.status_code == 403
    finally:
        await server.close()


@pytest.mark.parametrize(("host", "token"), [("127.0.0.1", None), ("127.0.0.1", TOKEN)])
async def test_on_loopback_a_token_is_needed_only_when_set(
    trusted_snapshot: Snapshot, host: str, token: str | None
) -> None:
    server, port = await _serve(trusted_snapshot, host, admin_token=token)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.get("/v1/config")
            assert r.status_code == (401 if token else 200)
            if token:
                r = await client.get("/v1/config", headers={"authorization": f"bearer {token}"})
                assert r.status_code == 200
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False), ("admin.local", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


async def test_explain_body_cap_and_concurrency_limit(trusted_snapshot: Snapshot) -> None:
    server, port = await _serve(
        trusted_snapshot, "127.0.0.1", admin_explain_max_bytes=4096, admin_explain_concurrency=1
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            big = {"body": {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}}
            r = await client.post("/v1/explain", json=big)
            assert r.status_code == 413
            assert (await client.post("/v1/explain", json={"body": CHAT})).status_code == 200
            # An explain in flight holds the only slot (as a slow one would): the next is
            # refused at once with a 429 and Retry-After, not queued on the loop.
            assert server.explain_slots.acquire()
            try:
                r = await client.post("/v1/explain", json={"body": CHAT})
                assert r.status_code == 429
                assert r.json()["error"]["code"] == "explain_busy"
                assert r.headers["retry-after"] == "1"
            finally:
                server.explain_slots.release()
            assert (await client.post("/v1/explain", json={"body": CHAT})).status_code == 200
            assert server.explain_slots.busy == 0
    finally:
        await server.close()
