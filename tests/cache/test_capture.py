"""Collecting a miss's answer: only servable completions, bounded, streams reassembled;
and a stored completion replayed as the stream OpenAI would have sent."""

from __future__ import annotations

import gzip
import json
from typing import Any

import orjson

from extproc.cache.capture import Captured, ResponseCapture
from extproc.cache.sse import assemble, replay
from tests.cache.conftest import completion


def captured(body: bytes, *, stream: bool = False, encoding: str = "", size: int = 65536) -> Any:
    capture = ResponseCapture(stream=stream, encoding=encoding, max_bytes=size, prompt_tokens=9)
    for i in range(0, len(body), 7):  # in pieces, as a proxy delivers them
        capture.feed(body[i : i + 7])
    return capture.finish()


def sse(*chunks: dict[str, Any], done: bool = True, eol: str = "\n") -> bytes:
    out = "".join(f"data: {json.dumps(c)}{eol}{eol}" for c in chunks)
    return (out + (f"data: [DONE]{eol}{eol}" if done else "")).encode()


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m-1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def test_buffered_completion_is_kept_verbatim_with_its_usage() -> None:
    body = completion()
    got = captured(body)
    assert isinstance(got, Captured) and got.body == body
    assert (got.model, got.prompt_tokens, got.completion_tokens, got.estimated) == (
        "gpt-4o-mini-2024-07-18", 14, 3, False,
    )  # fmt: skip


def test_only_servable_answers_are_kept() -> None:
    assert captured(completion(finish="length")) == "finish_reason"
    assert captured(b"<html>") == "not_json"
    assert captured(completion(), size=50) == "too_large"
    two = orjson.loads(completion())
    two["choices"].append(two["choices"][0])
    assert captured(orjson.dumps(two)) == "choices"
    tool = orjson.loads(completion())
    tool["choices"][0]["message"]["tool_calls"] = [{"id": "1"}]
    assert captured(orjson.dumps(tool)) == "tools"
    assert captured(completion(), encoding="br") == "encoding"


def test_gzip_bodies_are_decoded() -> None:
    got = captured(gzip.compress(completion()), encoding="gzip")
    assert isinstance(got, Captured) and orjson.loads(got.body) == orjson.loads(completion())


def test_stream_is_reassembled_into_one_completion() -> None:
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Par"}),
        chunk({"content": "is."}),
        chunk({}, "stop"),
        {**chunk({}), "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
        eol="\r\n",
    )
    got = captured(body, stream=True)
    assert isinstance(got, Captured) and not got.estimated
    doc = orjson.loads(got.body)
    assert doc["object"] == "chat.completion" and doc["id"] == "chatcmpl-9"
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": "Paris."}
    assert doc["choices"][0]["finish_reason"] == "stop"
    assert (got.prompt_tokens, got.completion_tokens) == (5, 2)


def test_stream_without_usage_gets_the_estimate() -> None:
    got = captured(sse(chunk({"content": "12345678"}), chunk({}, "stop")), stream=True)
    assert isinstance(got, Captured) and got.estimated
    assert orjson.loads(got.body)["usage"] == {
        "prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
    }  # fmt: skip


def test_streams_a_cache_must_not_serve() -> None:
    assert captured(sse(chunk({"content": "a"}), chunk({}, "stop"), done=False), stream=True) == (
        "stream"
    )
    assert captured(sse(chunk({"content": "a"}), chunk({}, "length")), stream=True) == "stream"
    calls = chunk({"tool_calls": [{"index": 0, "id": "c"}]})
    assert captured(sse(calls, chunk({}, "tool_calls")), stream=True) == "stream"
    assert captured(sse({"error": {"message": "boom"}}), stream=True) == "stream"


def test_done_is_seen_even_split_across_chunks() -> None:
    capture = ResponseCapture(stream=True, encoding="", max_bytes=4096, prompt_tokens=1)
    body = sse(chunk({"content": "hi"}, "stop"))
    head, tail = body[:-6], body[-6:]  # "[DO" | "NE]\n\n"
    capture.feed(head)
    assert not capture.done
    capture.feed(tail)
    assert capture.done and isinstance(capture.finish(), Captured)


def test_replay_is_the_stream_openai_sends() -> None:
    stored = orjson.loads(completion("Paris."))
    raw = replay(stored, include_usage=False)
    assert raw.endswith(b"data: [DONE]\n\n")
    events = [orjson.loads(e[6:]) for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]
    assert [e["object"] for e in events] == ["chat.completion.chunk"] * 2
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Paris."}
    assert events[1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in e for e in events)
    again = assemble(raw)
    assert again is not None and again["choices"][0]["message"]["content"] == "Paris."
    with_usage = [
        orjson.loads(e[6:])
        for e in replay(stored, include_usage=True).split(b"\n\n")
        if e and e != b"data: [DONE]"
    ]
    assert [e["usage"] for e in with_usage[:-1]] == [None, None]
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["total_tokens"] == 17
