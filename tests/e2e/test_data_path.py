"""Through a real Envoy, with the official openai client: routing, rewrite, refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from extproc.demo.processes import envoy_binary
from tests.conftest import E2E_CONFIG
from tests.fixtures.stack import LITELLM_KEY, REPO, Backends, EnvoyStack, envoy_for, routeiq_server

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def oai(envoy: EnvoyStack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=envoy.base_url, api_key=LITELLM_KEY, max_retries=0) as c:
        yield c


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("path", sorted((REPO / "envoy").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_envoy_configs_validate(path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "--base-id", "4242"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout


def test_explicit_model_goes_to_its_backend(
    oai: openai.OpenAI, envoy: EnvoyStack, backends: Backends
) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msg("hello"))
    completion = raw.parse()
    assert raw.headers["x-routeiq-backend"] == "eco"
    assert raw.headers["x-demo-backend"] == "eco"
    assert len(raw.headers["x-routeiq-decision-id"]) == 16
    assert float(raw.headers["x-routeiq-overhead-ms"]) > 0
    assert completion.choices[0].message.content.startswith("[eco/gpt-4o-mini]")
    got = backends.received("demo_eco")[-1]
    assert got["headers"]["x-routeiq-backend"] == "eco"
    assert got["headers"]["x-routeiq-decision-id"] == raw.headers["x-routeiq-decision-id"]


def test_body_rewrite_reaches_upstream_with_correct_length(
    oai: openai.OpenAI, envoy: EnvoyStack, backends: Backends
) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="o3", messages=msg("hi"))
    assert raw.headers["x-demo-backend"] == "premium"
    got = backends.received("demo_premium")[-1]
    assert got["body"]["model"] == "o3-2025-04-16"  # the backend's real name
    assert got["body"]["messages"] == msg("hi")  # the rest of the body untouched
    assert int(got["headers"]["content-length"]) == len(
        json.dumps(got["body"], separators=(",", ":")).encode()
    )
    # An alias is rewritten too.
    raw = oai.chat.completions.with_raw_response.create(model="gpt4", messages=msg("x"))
    assert raw.headers["x-demo-received-model"] == "gpt-4o"


def test_real_litellm_backend_non_streaming_and_streaming(
    oai: openai.OpenAI, envoy: EnvoyStack
) -> None:
    c = oai
    raw = c.chat.completions.with_raw_response.create(model="team-gpt", messages=msg("hey"))
    assert raw.headers["x-routeiq-backend"] == "litellm"
    completion = raw.parse()
    assert completion.choices[0].message.content == "hello from litellm"
    assert completion.usage is not None and completion.usage.total_tokens > 0

    chunks = list(c.chat.completions.create(model="team-gpt", messages=msg("hey"), stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "hello from litellm"


def test_streaming_arrives_incrementally(oai: openai.OpenAI, envoy: EnvoyStack) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o-mini", messages=msg("one two three four five six"), stream=True
    )
    times, text = [], ""
    start = time.monotonic()
    for chunk in stream:
        times.append(time.monotonic() - start)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    assert text.startswith("[eco/gpt-4o-mini] you said: one two")
    # The demo backend waits 50 ms between words: the first chunk must not wait for the last.
    assert len(times) >= 8
    assert times[-1] - times[0] > 0.2


def test_spoofed_routing_headers_are_stripped(
    oai: openai.OpenAI, envoy: EnvoyStack, backends: Backends
) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=msg("route me elsewhere"),
        extra_headers={
            "x-routeiq-cluster": "demo_premium",
            "x-routeiq-backend": "premium",
            "x-routeiq-anything": "1",
        },
    )
    assert raw.headers["x-demo-backend"] == "eco"
    got = backends.received("demo_eco")[-1]["headers"]
    assert got["x-routeiq-cluster"] == "demo_eco"
    assert got["x-routeiq-backend"] == "eco"
    assert "x-routeiq-anything" not in got


def test_passthrough_paths_are_untouched(envoy: EnvoyStack, backends: Backends) -> None:
    status, headers, _ = envoy.post(
        "/not-openai/files", b"{}", {"x-routeiq-cluster": "demo_premium"}
    )
    assert status == 404  # the demo backend has no such path
    assert headers["x-demo-backend"] == "eco"  # default route, spoof ignored
    assert "x-routeiq-decision-id" not in headers


def test_unknown_paths_under_the_prefix_are_refused(envoy: EnvoyStack) -> None:
    status, headers, raw = envoy.post("/v1/files", b"{}", {"x-routeiq-cluster": "demo_premium"})
    assert status == 404
    assert "x-demo-backend" not in headers  # refused by RouteIQ, never forwarded
    assert json.loads(raw)["error"]["code"] == "unknown_path"


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b'{"model": "gpt-4o-mini", "messages": [', {}, 400, "invalid_json"),
        (b'{"model": "gpt-4o-mini"}', {}, 400, "missing_messages"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', {}, 400, "missing_model"),
        (b"[1, 2]", {}, 400, "invalid_json"),
        (
            b"model=gpt",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (
            b'{"model": "gpt-5-ultra", "messages": [{"role": "user", "content": "x"}]}',
            {},
            404,
            "model_not_found",
        ),
        (
            json.dumps({"model": "gpt-4o-mini", "messages": msg("x" * 70_000)}).encode(),
            {},
            413,
            "request_too_large",
        ),
    ],
    ids=["malformed", "no-messages", "no-model", "not-object", "form", "unknown-model", "too-big"],
)
def test_bad_input_gets_openai_error(
    envoy: EnvoyStack, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    got_status, got_headers, got_body = envoy.post(CHAT, body, headers)
    assert got_status == status
    assert got_headers["content-type"] == "application/json"
    error = json.loads(got_body)["error"]
    assert error["code"] == code
    assert error["message"]
    assert "Traceback" not in error["message"]


def test_openai_client_raises_typed_errors(oai: openai.OpenAI, envoy: EnvoyStack) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        oai.chat.completions.create(model="nope", messages=msg("x"))
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="gpt-4o-mini", messages=[])


def test_other_openai_endpoints(oai: openai.OpenAI, envoy: EnvoyStack) -> None:
    c = oai
    raw = c.embeddings.with_raw_response.create(model="gpt-4o-mini", input="abc")
    assert raw.headers["x-routeiq-backend"] == "eco"
    raw = c.completions.with_raw_response.create(model="gpt-4o", prompt="abc")
    assert raw.headers["x-routeiq-backend"] == "premium"
    raw = c.responses.with_raw_response.create(model="o3", input="abc")
    assert raw.headers["x-demo-received-model"] == "o3-2025-04-16"


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_extproc_down(workdir: Path, backends: Backends, fail_open: bool) -> None:
    template = (
        REPO / "envoy" / ("routeiq-fail-open.yaml" if fail_open else "routeiq-fail-closed.yaml")
    )
    with routeiq_server(E2E_CONFIG, workdir) as (proc, port):
        stack = envoy_for(template, workdir, port, backends)
        try:
            body = json.dumps({"model": "gpt-4o", "messages": msg("x")}).encode()
            status, headers, _ = stack.post(CHAT, body)
            assert (status, headers["x-demo-backend"]) == (200, "premium")
            proc.stop()
            status, headers, raw = stack.post(CHAT, body, {"x-routeiq-cluster": "demo_premium"})
            if fail_open:
                # Through, unprocessed, on the default route: the spoofed header did not count.
                assert status == 200
                assert headers["x-demo-backend"] == "eco"
                assert backends.received("demo_eco")[-1]["body"]["model"] == "gpt-4o"
            else:
                assert status == 503  # retryable: the routing service is unavailable
                assert "x-demo-backend" not in headers
                # Envoy's own reply, in OpenAI's error format (local_reply_config),
                # saying what is wrong without Envoy's internal details.
                assert headers["content-type"] == "application/json"
                error = json.loads(raw)["error"]
                assert error["type"] == "service_unavailable"
                assert error["code"] == "routing_unavailable"
        finally:
            stack.envoy.stop()
