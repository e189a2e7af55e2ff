"""The OpenAI request parser: what it extracts and what it refuses."""

from __future__ import annotations

import json

import orjson
import pytest

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint, parse_request, rewrite_model
from extproc.api.paths import match_endpoint


def parse(endpoint: Endpoint, body: object) -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(endpoint, "POST", "/v1/x", {}, raw)


@pytest.mark.parametrize(
    ("path", "prefix", "expected"),
    [
        ("/v1/chat/completions", "/v1", Endpoint.CHAT_COMPLETIONS),
        ("/v1/chat/completions?x=1", "/v1", Endpoint.CHAT_COMPLETIONS),
        ("/v1/completions/", "/v1", Endpoint.COMPLETIONS),
        ("/v1/embeddings", "/v1", Endpoint.EMBEDDINGS),
        ("/v1/responses", "/v1", Endpoint.RESPONSES),
        ("/openai/v1/responses", "/openai/v1", Endpoint.RESPONSES),
        ("/v1/files", "/v1", None),
        ("/v2/chat/completions", "/v1", None),
        ("/v1/chat/completionsX", "/v1", None),
    ],
)
def test_match_endpoint(path: str, prefix: str, expected: Endpoint | None) -> None:
    assert match_endpoint(path, prefix) is expected


def test_chat_extracts_what_routing_needs() -> None:
    p = parse(
        Endpoint.CHAT_COMPLETIONS,
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {"type": "image_url", "image_url": {"url": "data:..."}},
                    ],
                },
                {"role": "assistant", "content": None, "tool_calls": []},
                {"role": "tool", "content": "42", "tool_call_id": "a"},
                {"role": "user", "content": "and now?"},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "stream": True,
            "max_completion_tokens": 300,
            "user": "u1",
            "response_format": {"type": "json_object"},
        },
    )
    assert p.model == "auto"  # type: ignore[attr-defined]
    assert p.last_user_text == "and now?"  # type: ignore[attr-defined]
    assert p.system_text == "You are terse."  # type: ignore[attr-defined]
    assert p.tool_count == 1 and p.tool_message_count == 1  # type: ignore[attr-defined]
    assert p.has_images and p.wants_json and p.stream  # type: ignore[attr-defined]
    assert p.max_tokens == 300 and p.user == "u1"  # type: ignore[attr-defined]
    assert p.needed_capabilities == {"tools", "vision", "json"}  # type: ignore[attr-defined]
    chars = len("You are terse.") + len("What is in this image?") + 2 + len("and now?")
    assert p.prompt_tokens == chars // 4 + 4 * 5  # type: ignore[attr-defined]


def test_other_endpoints() -> None:
    c = parse(Endpoint.COMPLETIONS, {"model": "m", "prompt": ["a", "bcd"], "max_tokens": 5})
    assert c.last_user_text == "bcd" and c.max_tokens == 5  # type: ignore[attr-defined]
    e = parse(Endpoint.EMBEDDINGS, {"model": "m", "input": [1, 2, 3]})
    assert e.prompt_chars == 12 and not e.needed_capabilities  # type: ignore[attr-defined]
    r = parse(
        Endpoint.RESPONSES,
        {
            "model": "m",
            "instructions": "sys",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
            ],
            "max_output_tokens": 9,
            "text": {"format": {"type": "json_schema"}},
        },
    )
    assert r.last_user_text == "hello" and r.system_text == "sys"  # type: ignore[attr-defined]
    assert r.max_tokens == 9 and r.wants_json  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("endpoint", "body", "code"),
    [
        (Endpoint.CHAT_COMPLETIONS, b"", "invalid_request"),
        (Endpoint.CHAT_COMPLETIONS, b"{nope", "invalid_json"),
        (Endpoint.CHAT_COMPLETIONS, b'"text"', "invalid_json"),
        (
            Endpoint.CHAT_COMPLETIONS,
            {"messages": [{"role": "user", "content": "x"}]},
            "missing_model",
        ),
        (Endpoint.CHAT_COMPLETIONS, {"model": "m"}, "missing_messages"),
        (Endpoint.CHAT_COMPLETIONS, {"model": "m", "messages": []}, "missing_messages"),
        (Endpoint.CHAT_COMPLETIONS, {"model": "m", "messages": ["x"]}, "invalid_request"),
        (
            Endpoint.CHAT_COMPLETIONS,
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
            "invalid_request",
        ),
        (
            Endpoint.CHAT_COMPLETIONS,
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
            "invalid_request",
        ),
        (Endpoint.COMPLETIONS, {"model": "m"}, "missing_prompt"),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": {}}, "invalid_request"),
        (Endpoint.RESPONSES, {"model": "m"}, "missing_input"),
    ],
)
def test_refusals_are_400_with_a_code(endpoint: Endpoint, body: object, code: str) -> None:
    with pytest.raises(ApiError) as info:
        parse(endpoint, body)
    assert info.value.status == 400
    assert info.value.code == code
    doc = json.loads(info.value.body())
    assert doc["error"]["type"] == "invalid_request_error"
    assert doc["error"]["message"]


def test_rewrite_model_changes_only_the_model() -> None:
    body = {"model": "a", "messages": [{"role": "user", "content": "é"}], "n": 1}
    out = json.loads(rewrite_model(body, "b"))
    assert out == {**body, "model": "b"}
    assert body["model"] == "a"  # the parsed body is not mutated


def _nested(depth: int) -> bytes:
    """A chat body whose ``metadata`` value nests ``depth`` levels below the body object."""
    inner = b"[" * (depth - 1) + b"]" * (depth - 1)
    return b'{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":' + inner + b"}"


@pytest.mark.parametrize("depth", [65, 255, 1024])
def test_deep_nesting_is_a_400_at_parse_time(depth: int) -> None:
    """orjson decodes up to 1,024 levels, but the policy input cannot be encoded past 255
    (nor read by regorus past 128): the parser refuses depth above 64 itself."""
    assert orjson.loads(_nested(depth))  # orjson decodes it: the parser's own limit refuses it
    with pytest.raises(ApiError) as info:
        parse(Endpoint.CHAT_COMPLETIONS, _nested(depth))
    assert (info.value.status, info.value.code) == (400, "nesting_too_deep")
    assert "64" in info.value.message


def test_nesting_at_the_limit_is_accepted() -> None:
    p = parse(Endpoint.CHAT_COMPLETIONS, _nested(64))
    assert p.message_count == 1  # type: ignore[attr-defined]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[" * 5000 + "{" * 5000
    p = parse(
        Endpoint.CHAT_COMPLETIONS, {"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    assert p.last_user_text == text  # type: ignore[attr-defined]


def test_a_huge_model_value_is_refused_without_echoing_it() -> None:
    body = {"model": "a" * 1_000_000, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(ApiError) as info:
        parse(Endpoint.CHAT_COMPLETIONS, body)
    error = info.value
    assert (error.status, error.code, error.param) == (400, "model_too_long", "model")
    assert len(error.body()) < 300 and "aaaa" not in error.message


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}] * 100_001},
            "too_many_messages",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}] * 10_001}],
            },
            "too_many_content_parts",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}] * 1_025,
            },
            "too_many_tools",
        ),
        ({"model": "m", "input": ["x"] * 100_001}, "too_many_inputs"),
    ],
    ids=["messages", "content-parts", "tools", "inputs"],
)
def test_count_limits_are_400s(body: dict[str, object], code: str) -> None:
    endpoint = Endpoint.EMBEDDINGS if "input" in body else Endpoint.CHAT_COMPLETIONS
    with pytest.raises(ApiError) as info:
        parse(endpoint, body)
    assert (info.value.status, info.value.code) == (400, code)


def test_16k_system_messages_are_joined_in_order() -> None:
    """The system prompt is built with one join (linear), not by repeated concatenation."""
    messages: list[dict[str, object]] = [
        {"role": "system", "content": f"rule {i}"} for i in range(16_000)
    ]
    messages.append({"role": "developer", "content": [{"type": "text", "text": "last rule"}]})
    messages.append({"role": "user", "content": "go"})
    p = parse(Endpoint.CHAT_COMPLETIONS, {"model": "m", "messages": messages})
    expected = "\n".join([*(f"rule {i}" for i in range(16_000)), "last rule"])
    assert p.system_text == expected  # type: ignore[attr-defined]
    assert p.last_user_text == "go" and p.message_count == 16_002  # type: ignore[attr-defined]


def test_raw_body_is_kept_for_policies_that_ask_for_it() -> None:
    raw = b'{"model": "m",  "messages": [{"role": "user", "content": "x"}]}'
    p = parse(Endpoint.CHAT_COMPLETIONS, raw)
    assert p.raw_body is raw  # type: ignore[attr-defined]
