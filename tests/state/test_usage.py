"""The SSE usage parser on realistic OpenAI streams, split at every possible place."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from extproc.api.openai import Endpoint
from extproc.api.usage import (
    StreamUsageParser,
    Usage,
    ensure_stream_usage,
    usage_from_json,
)

USAGE = {
    "prompt_tokens": 12,
    "completion_tokens": 5,
    "total_tokens": 17,
    "prompt_tokens_details": {"cached_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def chunk(
    content: str | None, *, usage: object = "absent", finish: str | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "delta": {} if content is None else {"content": content},
                "finish_reason": finish,
            }
        ],
    }
    if usage != "absent":
        doc["usage"] = usage
    return doc


def sse(*docs: object, eol: str = "\n") -> bytes:
    out = b""
    for doc in docs:
        data = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        out += b"data: " + data + eol.encode() + eol.encode()
    return out + b"data: [DONE]" + (eol * 2).encode()


WORDS = ["Hel", "lo, ", "wor", "ld! ", '\u00e9t\u00e9 "q"\n']
# What an upstream sends when include_usage is on, and what the client would have seen.
WITH_USAGE = sse(
    *(chunk(w, usage=None) for w in WORDS),
    chunk(None, usage=None, finish="stop"),
    {**chunk(None, usage=USAGE), "choices": []},
)
WITHOUT_USAGE = sse(*(chunk(w) for w in WORDS), chunk(None, finish="stop"))


def run(parser: StreamUsageParser, stream: bytes, cuts: list[int]) -> bytes:
    out = b""
    last = 0
    for cut in [*cuts, len(stream)]:
        out += parser.feed(stream[last:cut])
        last = cut
    return out + parser.finish()


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_passthrough_returns_each_chunk_untouched(eol: str) -> None:
    stream = WITH_USAGE.replace(b"\n", eol.encode())
    parser = StreamUsageParser()
    pieces = [stream[i : i + 7] for i in range(0, len(stream), 7)]
    for piece in pieces:
        assert parser.feed(piece) is piece
    assert parser.finish() == b""
    assert parser.usage == Usage(12, 5, 17, cached_tokens=8, reasoning_tokens=2)
    assert parser.done


@pytest.mark.parametrize("strip", [False, True])
@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_every_split_point(strip: bool, eol: str) -> None:
    def convert(stream: bytes) -> bytes:
        return stream.replace(b"\n", eol.encode())

    source, expected = convert(WITH_USAGE), convert(WITHOUT_USAGE if strip else WITH_USAGE)
    for cut in range(len(source) + 1):
        parser = StreamUsageParser(strip_usage=strip)
        assert run(parser, source, [cut]) == expected, cut
        assert parser.usage is not None and parser.usage.total_tokens == 17
        assert parser.done
    for cut in range(0, len(source), 3):  # two cuts: events split into three pieces
        parser = StreamUsageParser(strip_usage=strip)
        assert run(parser, source, [cut, min(len(source), cut + 5)]) == expected


@pytest.mark.parametrize("strip", [False, True])
def test_byte_by_byte(strip: bool) -> None:
    parser = StreamUsageParser(strip_usage=strip)
    out = run(parser, WITH_USAGE, list(range(1, len(WITH_USAGE))))
    assert out == (WITHOUT_USAGE if strip else WITH_USAGE)
    assert parser.result(100).total_tokens == 17


def test_strip_keeps_usage_the_client_asked_for_when_not_injected() -> None:
    parser = StreamUsageParser(strip_usage=False)
    assert run(parser, WITH_USAGE, [40, 400]) == WITH_USAGE


def test_strip_mode_holds_only_the_unfinished_event() -> None:
    parser = StreamUsageParser(strip_usage=True)
    first = sse(chunk("a", usage=None)).split(b"data: [DONE]")[0]
    assert parser.feed(first + b'data: {"id"') == first.replace(b',"usage":null', b"")
    assert parser.feed(b":1}\n\n") == b'data: {"id":1}\n\n'


def test_multi_line_data_comments_and_event_fields() -> None:
    stream = (
        b": keep-alive comment\n\n"
        b"event: message\nid: 7\n"
        b'data: {"choices":[{"delta":{"content":"abcd"}}],\n'
        b'data: "usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
        b"data: [DONE]\n\n"
    )
    parser = StreamUsageParser()
    assert run(parser, stream, [30, 70]) == stream
    assert parser.usage == Usage(3, 4, 7)
    assert parser.completion_chars == 4


def test_no_usage_estimates_from_content() -> None:
    stream = sse(*(chunk(w) for w in WORDS), chunk(None, finish="stop"))
    parser = StreamUsageParser()
    run(parser, stream, [10, 50, 51])
    chars = sum(len(w) for w in WORDS)
    assert parser.usage is None and parser.completion_chars == chars
    result = parser.result(prompt_tokens=40)
    assert result.estimated
    assert result.completion_tokens == -(-chars // 4)
    assert result.total_tokens == 40 + result.completion_tokens


def test_tool_call_arguments_and_legacy_completions_count() -> None:
    tool = {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": '{"a":1}'}}]}}]}
    legacy = {"choices": [{"text": "12345", "index": 0}]}
    parser = StreamUsageParser()
    run(parser, sse(tool, legacy), [])
    assert parser.completion_chars == 7 + 5


def test_unterminated_last_event_is_parsed_at_finish() -> None:
    stream = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}'
    parser = StreamUsageParser(strip_usage=True)
    assert parser.feed(stream) == b""
    assert parser.finish() == b""  # it was the injected usage chunk
    assert parser.usage == Usage(1, 2, 3)


def test_responses_api_stream() -> None:
    usage = {
        "input_tokens": 9,
        "output_tokens": 3,
        "total_tokens": 12,
        "input_tokens_details": {"cached_tokens": 4},
    }
    stream = (
        b"event: response.created\n"
        b'data: {"type":"response.created","response":{"id":"r","usage":null}}\n\n'
        b"event: response.output_text.delta\n"
        b'data: {"type":"response.output_text.delta","delta":"Hi there"}\n\n'
        b"event: response.completed\n"
        b"data: "
        + orjson.dumps({"type": "response.completed", "response": {"id": "r", "usage": usage}})
        + b"\n\n"
    )
    parser = StreamUsageParser(strip_usage=True)
    assert run(parser, stream, [5, 77, 150]) == stream  # nothing to strip here
    assert parser.usage == Usage(9, 3, 12, cached_tokens=4)
    assert parser.completion_chars == len("Hi there")


def test_malformed_events_are_forwarded_and_ignored() -> None:
    stream = b"data: {not json\n\ndata: 42\n\ndata: [DONE]\n\n"
    parser = StreamUsageParser(strip_usage=True)
    assert run(parser, stream, [9]) == stream
    assert parser.usage is None and parser.done


def test_usage_from_json_bodies() -> None:
    chat = orjson.dumps({"id": "c", "choices": [], "usage": USAGE})
    assert usage_from_json(chat) == Usage(12, 5, 17, cached_tokens=8, reasoning_tokens=2)
    responses = orjson.dumps(
        {"id": "r", "output": [], "usage": {"input_tokens": 2, "output_tokens": 3}}
    )
    assert usage_from_json(responses) == Usage(2, 3, 5)
    embeddings = orjson.dumps({"data": [], "usage": {"prompt_tokens": 6, "total_tokens": 6}})
    assert usage_from_json(embeddings) == Usage(6, 0, 6)
    assert usage_from_json(b'{"error": {"message": "x"}}') is None
    assert usage_from_json(b"<html>") is None
    assert usage_from_json(b"[]") is None


def test_ensure_stream_usage() -> None:
    body = {"model": "m", "stream": True, "messages": []}
    new, injected = ensure_stream_usage(body, Endpoint.CHAT_COMPLETIONS)
    assert injected and new["stream_options"] == {"include_usage": True}
    assert "stream_options" not in body  # the parsed body is not mutated
    asked = {**body, "stream_options": {"include_usage": True}}
    assert ensure_stream_usage(asked, Endpoint.CHAT_COMPLETIONS) == (asked, False)
    refused = {**body, "stream_options": {"include_usage": False, "x": 1}}
    new, injected = ensure_stream_usage(refused, Endpoint.COMPLETIONS)
    assert injected and new["stream_options"] == {"include_usage": True, "x": 1}
    assert ensure_stream_usage({**body, "stream": False}, Endpoint.CHAT_COMPLETIONS)[1] is False
    assert ensure_stream_usage(body, Endpoint.RESPONSES)[1] is False
