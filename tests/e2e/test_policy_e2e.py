"""Rego policy through the real Envoy: allow, deny, constrain, keep confidential in-cluster,
and a remote OPA server going down under both failure modes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.configs import embedded_policy, write_config
from tests.fixtures.opa_server import OpaServer
from tests.fixtures.stack import REPO, Backends, EnvoyStack, envoy_for, routeiq_server

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


def team(name: str) -> dict[str, str]:
    """The demo API key issued to ``name`` (config/api-keys.yaml): how a caller proves
    its team; a client-sent x-team header is not trusted."""
    return {"authorization": f"Bearer sk-demo-{name}"}


def chat(model: str, text: str = "hello") -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": text}]}).encode()


@pytest.fixture(scope="module")
def policy_envoy(
    workdir: Path, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyStack]:
    config = write_config(tmp_path_factory.mktemp("policy") / "c.yaml", policy=embedded_policy())
    with routeiq_server(config, workdir) as (_, port):
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
        yield stack
        stack.envoy.stop()


def test_allowed_team_model(policy_envoy: EnvoyStack) -> None:
    status, headers, _ = policy_envoy.post(CHAT, chat("gpt-4o"), team("research"))
    assert (status, headers["x-demo-backend"]) == (200, "premium")


def test_denied_with_reason_and_json(policy_envoy: EnvoyStack) -> None:
    status, headers, body = policy_envoy.post(CHAT, chat("gpt-4o"), team("support"))
    assert status == 403
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error["code"] == "policy_denied"
    assert "gpt-4o" in error["message"] and "support" in error["message"]
    assert "x-demo-backend" not in headers  # never reached a backend


def test_team_limited_to_one_backend_lands_there(policy_envoy: EnvoyStack) -> None:
    status, headers, _ = policy_envoy.post(
        CHAT, chat("auto", "Write a Python quicksort with tests."), team("finance")
    )
    assert (status, headers["x-demo-backend"]) == (200, "local")


def test_max_tier_caps_auto_routing(policy_envoy: EnvoyStack) -> None:
    status, headers, _ = policy_envoy.post(
        CHAT,
        chat("auto", "Prove that there are infinitely many primes, step by step."),
        team("support"),
    )
    assert status == 200
    assert headers["x-demo-backend"] in ("eco", "local")  # max_tier eco


@pytest.mark.parametrize(
    ("headers", "text"),
    [
        ({"x-data-classification": "confidential"}, "Summarise our Q3 plan."),
        ({}, "Charge card 4111 1111 1111 1111 for the renewal, then summarise."),
    ],
    ids=["header", "card-number"],
)
def test_confidential_traffic_stays_in_cluster(
    policy_envoy: EnvoyStack, headers: dict[str, str], text: str
) -> None:
    status, got, _ = policy_envoy.post(CHAT, chat("auto", text), {**team("platform"), **headers})
    assert (status, got["x-demo-backend"]) == (200, "local")
    # An explicit external model is refused rather than leaked.
    status, _, body = policy_envoy.post(CHAT, chat("gpt-4o", text), {**team("platform"), **headers})
    assert status == 403, body


@pytest.mark.parametrize("failure_mode", ["open", "closed"])
def test_remote_opa_down(
    workdir: Path, backends: Backends, tmp_path: Path, failure_mode: str
) -> None:
    opa = OpaServer.start()
    try:
        policy = {
            "engine": "opa",
            "opa": {"url": opa.url, "timeoutMs": 300},
            "failureMode": failure_mode,
        }
        config = write_config(tmp_path / "c.yaml", policy=policy)
        with routeiq_server(config, workdir) as (proc, port):
            stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
            try:
                ok = stack.post(CHAT, chat("gpt-4o"), team("research"))
                assert ok[0] == 200
                denied = stack.post(CHAT, chat("gpt-4o"), team("support"))
                assert denied[0] == 403  # the remote engine really decides
                opa.kill()
                status, headers, body = stack.post(CHAT, chat("gpt-4o"), team("support"))
                if failure_mode == "open":
                    assert (status, headers["x-demo-backend"]) == (200, "premium")
                else:
                    assert status == 503
                    assert json.loads(body)["error"]["code"] == "policy_unavailable"
                stack.post(CHAT, chat("gpt-4o"), team("support"))
                log = proc.output()
                assert (
                    log.count("WARNING routeiq policy engine unavailable") == 1
                )  # once per outage
            finally:
                stack.envoy.stop()
    finally:
        opa.kill()
