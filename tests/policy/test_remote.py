"""The remote engine against an OPA Data API served by the real OPA engine (subprocess)."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest

from extproc.config.errors import ConfigError
from extproc.policy import PolicySpec, RemoteOpaEngine, build_policy_engine
from tests.fixtures.opa_server import OpaServer
from tests.policy.conftest import REPO, request_doc


def _spec(url: str, *, failure_mode: str = "closed", timeout_ms: int = 500) -> PolicySpec:
    return PolicySpec.model_validate(
        {"engine": "opa", "failureMode": failure_mode, "opa": {"url": url, "timeoutMs": timeout_ms}}
    )


def _engine(spec: PolicySpec) -> RemoteOpaEngine:
    engine = build_policy_engine(spec, REPO)
    assert isinstance(engine, RemoteOpaEngine)
    return engine


async def test_allow_and_constraints(opa_server: OpaServer) -> None:
    engine = _engine(_spec(opa_server.url))
    result = await engine.evaluate(request_doc("finance"))
    assert result.allowed and result.engine == "opa" and not result.engine_unavailable
    assert result.allowed_backends == frozenset({"local"})
    assert result.latency_s > 0 and engine.ready
    await engine.aclose()


async def test_deny(opa_server: OpaServer) -> None:
    engine = _engine(_spec(opa_server.url))
    result = await engine.evaluate(request_doc("support", "gpt-4o"))
    assert not result.allowed and result.http_status == 403
    assert result.message == "Team 'support' may not use model 'gpt-4o'."
    assert result.rule_ids == ("team-max-tier", "team-model-allowlist")
    await engine.aclose()


async def test_undefined_decision_denies(opa_server: OpaServer) -> None:
    spec = _spec(opa_server.url).model_copy(update={"query": "data.routeiq.no_such_rule"})
    engine = _engine(spec)
    result = await engine.evaluate(request_doc())
    assert not result.allowed and result.reason == "policy decision undefined"
    assert not result.engine_unavailable
    await engine.aclose()


@pytest.mark.parametrize(
    ("mode", "allowed", "status"), [("open", True, 200), ("closed", False, 503)]
)
async def test_timeout_follows_failure_mode(mode: str, allowed: bool, status: int) -> None:
    slow = OpaServer.start(delay_ms=300)
    try:
        engine = _engine(_spec(slow.url, failure_mode=mode, timeout_ms=50))
        started = time.perf_counter()
        result = await engine.evaluate(request_doc())
        assert time.perf_counter() - started < 0.25
        assert result.engine_unavailable and result.allowed is allowed
        assert result.http_status == status and result.reason.endswith("timeout")
        assert not engine.ready
        await engine.aclose()
    finally:
        slow.stop()


async def test_server_down_fail_open_and_closed() -> None:
    server = OpaServer.start()
    open_engine = _engine(_spec(server.url, failure_mode="open"))
    closed_engine = _engine(_spec(server.url, failure_mode="closed"))
    assert (await open_engine.evaluate(request_doc())).allowed
    server.kill()

    result = await open_engine.evaluate(request_doc("support", "gpt-4o"))
    assert result.allowed and result.engine_unavailable
    assert result.reason.startswith("policy engine unavailable")

    denied = await closed_engine.evaluate(request_doc())
    assert not denied.allowed and denied.http_status == 503 and denied.engine_unavailable
    error = denied.api_error()
    assert error.code == "policy_unavailable" and b"policy engine unavailable" in error.body()
    assert not closed_engine.ready
    await open_engine.aclose()
    await closed_engine.aclose()


async def test_token_file(tmp_path: Path, opa_server: OpaServer) -> None:
    spec = PolicySpec.model_validate(
        {"engine": "opa", "opa": {"url": opa_server.url, "tokenFile": "missing"}}
    )
    with pytest.raises(ConfigError, match="OPA token file"):
        build_policy_engine(spec, tmp_path)
    (tmp_path / "token").write_text("s3cret\n")
    spec = spec.model_copy(update={"opa": spec.opa.model_copy(update={"token_file": "token"})})
    engine = build_policy_engine(spec, tmp_path)
    assert (await engine.evaluate(request_doc())).allowed
    await engine.aclose()


def test_opa_engine_needs_a_url() -> None:
    with pytest.raises(ValueError, match="needs an 'opa' section"):
        PolicySpec(engine="opa")


async def test_sync_close_on_the_running_loop(opa_server: OpaServer) -> None:
    engine = _engine(_spec(opa_server.url))
    assert (await engine.evaluate(request_doc())).allowed
    engine.close()  # what a snapshot swap on the event loop calls
    for _ in range(20):
        await asyncio.sleep(0.01)
    assert engine._client is None


def test_sync_close_before_the_loop_closes(opa_server: OpaServer) -> None:
    """Shutdown order: the loop stopped but not closed yet; close() finishes on it."""
    engine = _engine(_spec(opa_server.url))
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(engine.evaluate(request_doc())).allowed
        engine.close()
        assert engine._client is None
    finally:
        loop.close()
    del engine
    gc.collect()


@pytest.mark.parametrize(
    ("mode", "allowed", "status"), [("open", True, 200), ("closed", False, 503)]
)
async def test_an_input_the_client_cannot_encode_stays_inside_the_failure_mode(
    opa_server: OpaServer, mode: str, allowed: bool, status: int
) -> None:
    """A 1,000-level input made the HTTP client's JSON encoder raise RecursionError out of
    evaluate(); the engine must answer per its failure mode instead, and stay usable."""
    engine = _engine(_spec(opa_server.url, failure_mode=mode))
    deep: object = 1
    for _ in range(1_000):
        deep = [deep]
    doc = request_doc()
    doc["parsed_body"]["deep"] = deep
    result = await engine.evaluate(doc)
    assert result.engine_unavailable and result.allowed is allowed
    assert result.http_status == status and result.reason.startswith("policy engine unavailable")
    assert (await engine.evaluate(request_doc("finance"))).allowed_backends == frozenset({"local"})
    await engine.aclose()
