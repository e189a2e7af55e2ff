"""The routeiq Kong plugin, run by the real kong-python-pluginserver and driven as Kong does.

Every test plays whole requests (access phase, then log phase) through the plugin
server's socket and asserts on what the plugin asked Kong to do. The module runs twice:
threads with Lua-style PDK returns, and gevent with Python-style returns.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.kong.conftest import plugin_conf
from tests.kong.harness import PLUGIN_DIR, SERVER_BIN, Kong, Record, Request

READS = ["kong.request.get_path", "kong.request.get_method", "kong.request.get_headers"]
BODY = "kong.request.get_raw_body"


def _routed_to(rec: Record, backend: str) -> None:
    assert rec.exit is None, rec
    assert rec.upstream_headers["x-routeiq-backend"] == backend, rec


# -- plugin metadata ---------------------------------------------------------------------


def test_plugin_info_names_phases_priority_version_and_schema(kong: Kong) -> None:
    info = kong.plugin_info()
    assert info["Name"] == "routeiq"
    assert sorted(info["Phases"]) == ["access", "log"]
    assert info["Priority"] == 790
    assert info["Version"] == __import__("extproc").__version__
    fields = info["Schema"]["fields"][0]["config"]["fields"]
    assert [next(iter(f)) for f in fields] == ["config_path", "timeout_ms", "buffer_responses"]


def test_query_command_dumps_the_plugin_for_kong() -> None:
    out = subprocess.run(
        [str(SERVER_BIN), "-d", str(PLUGIN_DIR), "--dump-all-plugins"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    (plugin,) = json.loads(out.stdout)
    assert plugin["Name"] == "routeiq" and plugin["Priority"] == 790


# -- routed requests ---------------------------------------------------------------------


def test_explicit_model_goes_to_its_kong_upstream_with_minimal_round_trips(
    kong: Kong, instance: int
) -> None:
    rec = kong.request(instance, Request.chat("gpt-4o-mini"))
    _routed_to(rec, "eco")
    assert rec.upstream == "eco.upstream" and rec.target is None
    assert rec.body is None  # the backend knows the model by the same name: body untouched
    assert rec.set_headers_calls == 1 and rec.cleared == []
    assert rec.response_headers["x-routeiq-backend"] == "eco"
    did = rec.upstream_headers["x-routeiq-decision-id"]
    assert rec.response_headers["x-routeiq-decision-id"] == did
    assert rec.ctx == {"routeiq_decision_id": did}
    assert rec.pdk_calls["access"] == [
        *READS,
        BODY,
        "kong.service.set_upstream",
        "kong.service.request.set_headers",
        "kong.response.set_headers",
        "kong.ctx.shared.set",
    ]
    assert rec.pdk_calls["log"] == ["kong.ctx.shared.get", "kong.service.response.get_status"]
    assert rec.unknown == [] and rec.errors == []


def test_alias_is_rewritten_in_the_body(kong: Kong, instance: int) -> None:
    rec = kong.request(instance, Request.chat("mini"))
    _routed_to(rec, "eco")
    assert rec.body is not None
    assert json.loads(rec.body)["model"] == "gpt-4o-mini"
    assert json.loads(rec.body)["messages"] == [{"role": "user", "content": "Hello there"}]


def test_backend_model_name_and_host_port_target(kong: Kong, instance: int) -> None:
    rec = kong.request(instance, Request.chat("o3"))
    _routed_to(rec, "premium")
    assert rec.target == ("127.0.0.1", 18002) and rec.upstream is None
    assert rec.body is not None and json.loads(rec.body)["model"] == "o3-2025-04-16"


def test_backend_without_kong_settings_uses_the_upstream_named_like_its_cluster(
    kong: Kong, instance: int
) -> None:
    rec = kong.request(instance, Request.chat("llama-3.1-8b"))
    _routed_to(rec, "local")
    assert rec.upstream == "demo_local"
    assert rec.body is not None
    assert json.loads(rec.body)["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_auto_is_classified_and_routed_by_tier(kong: Kong, instance: int) -> None:
    hard = "Prove that the square root of 2 is irrational, step by step, rigorously."
    rec = kong.request(instance, Request.chat("auto", hard))
    assert rec.exit is None
    backend = rec.upstream_headers["x-routeiq-backend"]
    assert rec.response_headers["x-routeiq-routed-profile"] == "auto"
    tier = rec.response_headers["x-routeiq-tier"]
    assert tier in ("premium", "standard"), rec  # reasoning/math is never sent to eco
    assert backend == "premium" and rec.target == ("127.0.0.1", 18002)
    assert json.loads(rec.body or b"{}")["model"] == "gpt-4o"  # premium's default model
    easy = kong.request(instance, Request.chat("auto", "hi! how are you?"))
    assert easy.exit is None
    assert easy.response_headers["x-routeiq-tier"] in ("eco", "free")


# -- refusals ----------------------------------------------------------------------------


def test_policy_denial_is_an_openai_403(kong: Kong, instance: int) -> None:
    rec = kong.request(instance, Request.chat("gpt-4o", x_team="interns"))
    assert rec.exit is not None
    status, _, headers = rec.exit
    assert status == 403
    assert headers["content-type"] == "application/json"
    err = rec.error_json["error"]
    assert "interns" in err["message"] and err["type"] == "permission_denied"
    assert "x-routeiq-decision-id" in headers
    assert rec.upstream is None and rec.target is None and rec.upstream_headers == {}
    assert rec.pdk_calls["access"] == [*READS, BODY, "kong.response.exit"]
    assert rec.pdk_calls["log"] == ["kong.ctx.shared.get"]  # nothing to account
    # an allowed team passes the same policy
    _routed_to(kong.request(instance, Request.chat("gpt-4o", x_team="research")), "premium")


def test_over_budget_is_a_429_with_retry_after(kong: Kong, instance: int, server: object) -> None:
    user = f"user-{id(server)}"
    _routed_to(kong.request(instance, Request.chat("gpt-4o-mini", x_user_id=user)), "eco")
    rec = kong.request(instance, Request.chat("gpt-4o-mini", x_user_id=user))
    assert rec.exit is not None
    status, _, headers = rec.exit
    assert status == 429
    assert int(headers["retry-after"]) > 0
    assert rec.error_json["error"]["code"] == "rate_limit_exceeded"
    assert headers["x-ratelimit-limit-requests"] == "1"


def test_usage_read_in_the_log_phase_reaches_the_token_budget(
    kong: Kong, instance: int, server: object
) -> None:
    key = f"Bearer sk-{id(server)}"
    req = Request.chat("gpt-4o-mini", authorization=key)
    req.upstream_body = json.dumps(
        {
            "choices": [],
            "usage": {"prompt_tokens": 20, "completion_tokens": 580, "total_tokens": 600},
        }
    ).encode()
    first = kong.request(instance, req)
    _routed_to(first, "eco")
    assert first.buffering  # a token budget applies: Kong buffers the JSON response
    assert first.pdk_calls["access"][-1] == "kong.service.request.enable_buffering"
    assert first.pdk_calls["log"][-1] == "kong.service.response.get_raw_body"
    # 600 real tokens against a 500 budget: the next request of this key is refused.
    again = kong.request(instance, Request.chat("gpt-4o-mini", authorization=key))
    assert again.exit is not None and again.exit[0] == 429, again
    assert again.error_json["error"]["type"] == "tokens"


def test_streamed_request_is_not_buffered_nor_given_a_usage_chunk(
    kong: Kong, instance: int, server: object
) -> None:
    req = Request.chat("gpt-4o-mini", authorization=f"Bearer sk-stream-{id(server)}")
    doc = json.loads(req.body)
    req.body = json.dumps({**doc, "stream": True}).encode()
    req.headers["content-length"] = str(len(req.body))
    rec = kong.request(instance, req)
    _routed_to(rec, "eco")
    assert not rec.buffering  # buffering would hold the stream back until its end
    assert rec.body is None  # no stream_options the client did not ask for


def test_malformed_and_empty_bodies_are_400(kong: Kong, instance: int) -> None:
    for body, code in ((b'{"model": "gpt-4o", ', "invalid_json"), (b'{"messages": []}', None)):
        req = Request(body=body)
        rec = kong.request(instance, req)
        assert rec.exit is not None and rec.exit[0] == 400, rec
        assert rec.error_json["error"]["type"] == "invalid_request_error"
        if code:
            assert rec.error_json["error"]["code"] == code
    rec = kong.request(instance, Request(body=b""))
    assert rec.exit is not None and rec.exit[0] == 400
    assert "empty" in rec.error_json["error"]["message"]


def test_oversized_body_is_413_from_content_length_before_reading_it(
    kong: Kong, instance: int
) -> None:
    big = Request.chat("gpt-4o-mini", "x" * 70_000)
    rec = kong.request(instance, big)
    assert rec.exit is not None and rec.exit[0] == 413
    assert rec.error_json["error"]["code"] == "request_too_large"
    assert BODY not in rec.pdk_calls["access"]  # never pulled over the socket
    del big.headers["content-length"]  # chunked: the size is known once the body is read
    rec = kong.request(instance, big)
    assert rec.exit is not None and rec.exit[0] == 413
    assert BODY in rec.pdk_calls["access"]


def test_body_beyond_kongs_buffer_is_413(kong: Kong, instance: int) -> None:
    kong.body_buffer_size = 100  # nginx spilled the body to a file: get_raw_body fails
    rec = kong.request(instance, Request.chat("gpt-4o-mini", "y" * 200))
    assert rec.exit is not None and rec.exit[0] == 413


def test_wrong_content_type_is_415(kong: Kong, instance: int) -> None:
    req = Request.chat("gpt-4o-mini")
    req.headers["content-type"] = "text/plain"
    rec = kong.request(instance, req)
    assert rec.exit is not None and rec.exit[0] == 415
    assert rec.error_json["error"]["code"] == "unsupported_media_type"
    assert BODY not in rec.pdk_calls["access"]


# -- headers and passthrough -------------------------------------------------------------


SPOOFED = {
    "x-routeiq-cluster": "demo_premium",
    "x-routeiq-category": "x",
    "x-routeiq-profile": "eco",
}


@pytest.mark.parametrize(
    ("method", "path", "reads"),
    [
        ("GET", "/v1/files/abc", READS),  # the config's passthrough rule (read-only)
        ("POST", "/healthz", ["kong.request.get_path", "kong.request.get_headers"]),  # outside
    ],
)
def test_passthrough_paths_are_untouched_except_spoofed_headers(
    kong: Kong, instance: int, method: str, path: str, reads: list[str]
) -> None:
    rec = kong.request(instance, Request(method=method, path=path, headers=dict(SPOOFED)))
    assert rec.exit is None and rec.upstream is None and rec.body is None
    assert sorted(rec.cleared) == sorted(SPOOFED)
    assert rec.pdk_calls["access"] == [*reads, *["kong.service.request.clear_header"] * 3]


def test_models_are_listed_from_the_config(kong: Kong, instance: int) -> None:
    rec = kong.request(instance, Request(method="GET", path="/v1/models", headers=dict(SPOOFED)))
    assert rec.exit is not None and rec.exit[0] == 200 and rec.upstream is None
    listing = json.loads(rec.exit[1])
    ids = {m["id"]: m["routeiq"]["kind"] for m in listing["data"]}
    assert listing["object"] == "list"
    assert ids["gpt-4o"] == "model" and ids["o3"] == "model" and ids["reasoning"] == "profile"
    assert rec.pdk_calls["access"] == [
        "kong.request.get_path",
        "kong.request.get_method",
        "kong.response.exit",
    ]
    one = kong.request(instance, Request(method="GET", path="/v1/models/o3"))
    assert one.exit is not None and json.loads(one.exit[1])["id"] == "o3"
    missing = kong.request(instance, Request(method="GET", path="/v1/models/gpt-9"))
    assert missing.exit is not None and missing.exit[0] == 404
    assert missing.error_json["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/chat/completions", 405, "method_not_allowed"),
        ("POST", "/v1/files", 404, "unknown_path"),
        ("POST", "/v1/chat/completions/x", 404, "unknown_path"),
        ("POST", "/v1/chat/%zz", 400, "invalid_path"),
    ],
)
def test_unknown_paths_below_the_prefix_are_refused(
    kong: Kong, instance: int, method: str, path: str, status: int, code: str
) -> None:
    rec = kong.request(instance, Request(method=method, path=path, headers=dict(SPOOFED)))
    assert rec.exit is not None and rec.exit[0] == status
    assert rec.error_json["error"]["code"] == code
    assert not any(k.startswith("x-routeiq-") for k in rec.exit[2])  # nothing echoed
    assert rec.upstream is None and rec.pdk_calls["access"] == [
        "kong.request.get_path",
        "kong.request.get_method",
        "kong.response.exit",
    ]


@pytest.mark.parametrize(
    "path", ["/v1/%63hat/completions", "/V1/Chat/Completions", "/v1//chat/completions;x"]
)
def test_odd_spellings_of_an_inference_path_are_decided(
    kong: Kong, instance: int, path: str
) -> None:
    req = Request.chat("gpt-4o", x_team="interns")  # interns may not use gpt-4o
    req.path = path
    rec = kong.request(instance, req)
    assert rec.exit is not None and rec.exit[0] == 403, rec
    assert rec.error_json["error"]["code"] == "policy_denied"


def test_spoofed_routing_headers_are_cleared_or_overwritten(kong: Kong, instance: int) -> None:
    req = Request.chat("gpt-4o-mini", x_routeiq_cluster="demo_premium", x_routeiq_backend="premium")
    rec = kong.request(instance, req)
    _routed_to(rec, "eco")
    assert rec.upstream == "eco.upstream"
    assert rec.cleared == ["x-routeiq-cluster"]  # x-routeiq-backend: overwritten instead
    assert rec.upstream_headers["x-routeiq-backend"] == "eco"


# -- failures ----------------------------------------------------------------------------


def test_unknown_kong_upstream_is_logged_and_not_routed(
    kong: Kong, instance: int, server: object
) -> None:
    kong.upstreams = {"demo_local"}  # eco.upstream missing from Kong's config
    rec = kong.request(instance, Request.chat("gpt-4o-mini"))
    assert rec.upstream is None and rec.upstream_headers == {}
    assert "could not find an Upstream" in server.log()  # type: ignore[attr-defined]


def test_invalid_config_answers_500(kong: Kong, tmp_path: Path) -> None:
    iid = kong.start_instance(plugin_conf(tmp_path / "missing.yaml"))
    rec = kong.request(iid, Request.chat("gpt-4o-mini"))
    assert rec.exit is not None and rec.exit[0] == 500
    assert rec.error_json["error"]["type"] == "server_error"


def test_decide_timeout_follows_the_failure_mode(
    kong: Kong, config_copy: Callable[..., Path]
) -> None:
    long_prompt = "Explain the history of the Roman empire in detail. " * 120
    closed = kong.start_instance(plugin_conf(config_copy(), timeout_ms=1))
    rec = kong.request(closed, Request.chat("auto", long_prompt))
    assert rec.exit is not None and rec.exit[0] == 500
    opened = kong.start_instance(plugin_conf(config_copy(failureMode="open"), timeout_ms=1))
    rec = kong.request(opened, Request.chat("auto", long_prompt))
    _routed_to(rec, "eco")  # the default backend
    assert rec.upstream == "eco.upstream" and rec.body is None


def test_upstream_failures_in_the_log_phase_cool_the_backend_down(
    kong: Kong, config_copy: Callable[..., Path]
) -> None:
    iid = kong.start_instance(plugin_conf(config_copy()))
    easy = "hi! how are you?"
    first = kong.request(iid, Request.chat("auto", easy))
    assert first.exit is None
    backend = first.upstream_headers["x-routeiq-backend"]
    model = {"eco": "gpt-4o-mini", "local": "llama-3.1-8b", "premium": "gpt-4o"}[backend]
    for _ in range(5):  # health: 5 failures within 30 s cool a backend down
        req = Request.chat(model)
        req.upstream_status = 503
        _routed_to(kong.request(iid, req), backend)
    rec = kong.request(iid, Request.chat("auto", easy))
    assert rec.exit is None
    assert rec.upstream_headers["x-routeiq-backend"] != backend, rec


def test_config_change_is_picked_up_without_restart(
    kong: Kong, config_copy: Callable[..., Path]
) -> None:
    import time

    import yaml

    path = config_copy()
    inst = kong.start_instance(plugin_conf(path))
    _routed_to(kong.request(inst, Request.chat("mini")), "eco")
    doc = yaml.safe_load(path.read_text())
    doc["spec"]["aliases"]["mini"] = "gpt-4o"  # re-point the alias at the premium backend
    path.write_text(yaml.safe_dump(doc))
    deadline = time.monotonic() + 15
    backend = "eco"
    while backend == "eco" and time.monotonic() < deadline:
        time.sleep(0.2)
        backend = kong.request(inst, Request.chat("mini")).upstream_headers["x-routeiq-backend"]
    assert backend == "premium"
