"""The answer cache in the Kong plugin, played against the real kong-python-pluginserver:
a miss is buffered and stored in the log phase, a repeat is answered by
``kong.response.exit`` (JSON, or an SSE replay) without an upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from tests.cache.conftest import completion
from tests.kong.conftest import CONFIG, KONG_UPSTREAMS, POLICIES, plugin_conf
from tests.kong.harness import Kong, PluginServer, Request


@pytest.fixture(scope="module")
def kong(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kong, int]]:
    workdir = tmp_path_factory.mktemp("kong-cache")
    doc = yaml.safe_load(CONFIG.read_text())
    doc["spec"]["policy"].update(modules=[str(POLICIES)], data=[str(POLICIES / "data")])
    doc["spec"]["cache"] = {"enabled": True}
    config = workdir / "routeiq.yaml"
    config.write_text(yaml.safe_dump(doc))
    with PluginServer(workdir) as server:
        k = Kong(server.socket_path, upstreams=set(KONG_UPSTREAMS))
        try:
            yield k, k.start_instance(plugin_conf(config))
        finally:
            k.close()


def chat(text: str, team: str = "support", **extra: object) -> Request:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": text}],
            "temperature": 0,
            **extra,
        }
    ).encode()
    headers: dict[str, str | list[str]] = {
        "content-type": "application/json",
        "content-length": str(len(body)),
        "x-team": team,
    }
    return Request(headers=headers, body=body, upstream_body=completion("Kong answer."))


def test_miss_is_stored_from_the_log_phase_and_a_repeat_exits_from_the_cache(
    kong: tuple[Kong, int],
) -> None:
    k, instance = kong
    first = k.request(instance, chat("What is Kong?"))
    assert first.upstream == "eco.upstream" and first.exit is None
    assert first.buffering  # a store is due: Kong buffers the JSON answer
    assert first.response_headers["x-routeiq-cache"] == "miss"
    assert first.pdk_calls["log"][-1] == "kong.service.response.get_raw_body"
    hit = k.request(instance, chat("What is Kong?"))
    assert hit.exit is not None and hit.upstream is None
    status, body, headers = hit.exit
    assert status == 200 and json.loads(body) == json.loads(completion("Kong answer."))
    assert headers["x-routeiq-cache"] == "hit" and headers["content-type"] == "application/json"
    assert k.request(instance, chat("What is Kong?", team="research")).exit is None


def test_stream_repeat_is_an_sse_replay_and_streams_are_not_stored(
    kong: tuple[Kong, int],
) -> None:
    k, instance = kong
    streamed = k.request(instance, chat("Stream me.", stream=True))
    assert not streamed.buffering and streamed.exit is None  # never buffered, not stored
    again = k.request(instance, chat("Stream me.", stream=True))
    assert again.exit is None
    k.request(instance, chat("Stream me."))  # stored from a buffered answer
    hit = k.request(instance, chat("Stream me.", stream=True))
    assert hit.exit is not None
    status, body, headers = hit.exit
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert body.endswith(b"data: [DONE]\n\n") and b"Kong answer." in body


def test_opt_out_bypasses(kong: tuple[Kong, int]) -> None:
    k, instance = kong
    req = chat("Do not keep this.")
    req.headers["cache-control"] = "no-store"
    rec = k.request(instance, req)
    assert rec.response_headers["x-routeiq-cache"] == "bypass" and not rec.buffering
    assert k.request(instance, chat("Do not keep this.")).exit is None
