"""Through a real Envoy (the shipped fail-closed config) and ``routeiq serve``: with the
servicer ending each stream after its last answer, every phase RouteIQ needs still
reaches it and Envoy finishes the request normally (decision headers to the client,
JSON and streamed usage read, refusals and the model listing answered)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from extproc.demo.processes import free_port
from tests.fixtures.stack import (
    REPO,
    Backends,
    EnvoyStack,
    envoy_for,
    routeiq_server,
    start_backend,
)

CHAT = "/v1/chat/completions"
N_JSON, N_STREAM = 6, 3


def usage_always_config(dest: Path) -> Path:
    """The shipped config with every response's usage read, paths made absolute."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "config" / "routeiq.yaml").read_text())
    spec = doc["spec"]
    spec["usageAccounting"] = "always"
    spec["identity"]["apiKeys"] = str(REPO / "config" / spec["identity"]["apiKeys"])
    policy = spec["policy"]
    policy["modules"] = [str((REPO / "config" / p).resolve()) for p in policy["modules"]]
    policy["data"] = [str((REPO / "config" / p).resolve()) for p in policy["data"]]
    path = dest / "routeiq.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EnvoyStack, int]]:
    work = tmp_path_factory.mktemp("stream-end")
    backends = Backends(ports={})
    admin = free_port()
    try:
        for cluster, name in (("demo_eco", "eco"), ("demo_premium", "premium")):
            proc, port = start_backend(name, work, stream_delay=0.001)
            backends.procs.append(proc)
            backends.ports[cluster] = port
        backends.ports["demo_local"] = backends.ports["litellm"] = backends.ports["demo_eco"]
        env = {"ROUTEIQ_ADMIN_PORT": str(admin)}
        with routeiq_server(usage_always_config(work), work, env) as (_, grpc_port):
            envoy = envoy_for(
                REPO / "envoy" / "routeiq-fail-closed.yaml", work, grpc_port, backends
            )
            try:
                yield envoy, admin
            finally:
                envoy.envoy.stop()
    finally:
        for p in backends.procs:
            p.stop()


def chat(model: str, stream: bool = False) -> bytes:
    doc: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        doc |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(doc).encode()


def token_usage_count(admin: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "gen_ai_client_token_usage":
            return sum(
                s.value
                for s in family.samples
                if s.name.endswith("_count") and s.labels.get("gen_ai_token_type") == "input"
            )
    return 0.0


def test_every_phase_still_reaches_routeiq_through_envoy(stack: tuple[EnvoyStack, int]) -> None:
    envoy, admin = stack
    before = token_usage_count(admin)
    for _ in range(N_JSON):
        status, headers, body = envoy.post(CHAT, chat("gpt-4o"))
        assert status == 200, body[:300]
        assert headers["x-routeiq-backend"] == "premium"  # the response headers phase
        assert json.loads(body)["usage"]["total_tokens"] > 0
    for _ in range(N_STREAM):
        status, headers, body = envoy.post(CHAT, chat("gpt-4o-mini", stream=True))
        assert status == 200, body[:300]
        assert headers["x-routeiq-backend"] == "eco"
        assert body.rstrip().endswith(b"data: [DONE]")  # the whole stream went through
    # Usage was read from every response body, JSON and streamed: the streams ended
    # after that phase, not before.
    assert token_usage_count(admin) - before == N_JSON + N_STREAM


def test_final_answers_in_earlier_phases_through_envoy(stack: tuple[EnvoyStack, int]) -> None:
    envoy, _ = stack
    status, _, body = envoy.post(CHAT, b"{")
    assert status == 400 and json.loads(body)["error"]["code"] == "invalid_json"
    status, _, body = envoy.post(CHAT, chat("no-such-model"))
    assert status == 404 and json.loads(body)["error"]["code"] == "model_not_found"
    with urllib.request.urlopen(f"{envoy.base_url}/models", timeout=10) as r:
        assert r.status == 200
        assert "gpt-4o" in {m["id"] for m in json.loads(r.read())["data"]}
    status, headers, _ = envoy.post(CHAT, chat("gpt-4o-mini"))  # the stack still serves
    assert status == 200 and headers["x-routeiq-backend"] == "eco"
