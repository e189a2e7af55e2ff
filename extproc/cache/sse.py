"""Streams and the cache: a finished SSE stream reassembled into one completion, and a
stored completion replayed as a stream.

Only what a cache may serve is reassembled: one choice, text content, finish reason
``stop`` and a ``[DONE]`` at the end; anything else (tool calls, several choices, a
cut stream, an error event) returns None and nothing is stored. The replay is what
OpenAI sends: a first chunk with the role and the content, a last one with the finish
reason, then (when the request asked ``stream_options.include_usage``) a chunk with
no choices and the usage, every other chunk carrying ``"usage": null``, then
``data: [DONE]``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_EOL = re.compile(rb"\r\n|\r|\n")


def _events(raw: bytes) -> list[bytes]:
    """The ``data`` payload of each event of an SSE body (multi-line data joined)."""
    out: list[bytes] = []
    for block in _EVENT_END.split(raw):
        data = [line[5:].removeprefix(b" ") for line in _EOL.split(block) if line[:5] == b"data:"]
        if data:
            out.append(b"\n".join(data))
    return out


def _chunk_choice(doc: dict[str, Any], parts: list[str]) -> str | None:
    """Fold one chunk's choice into ``parts``; the finish reason when it has one.
    Raises ``ValueError`` for what a cache must not serve."""
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    if len(choices) != 1 or not isinstance(choices[0], dict) or choices[0].get("index", 0) != 0:
        raise ValueError("several choices")
    choice = choices[0]
    delta = choice.get("delta") or {}
    if not isinstance(delta, dict) or delta.get("tool_calls") or delta.get("function_call"):
        raise ValueError("tool call")
    content = delta.get("content")
    if isinstance(content, str):
        parts.append(content)
    reason = choice.get("finish_reason")
    return reason if isinstance(reason, str) else None


def assemble(raw: bytes) -> dict[str, Any] | None:
    """The ``chat.completion`` a finished chat stream amounts to, or None (see module)."""
    head: dict[str, Any] | None = None
    parts: list[str] = []
    finish: str | None = None
    usage: Any = None
    done = False
    try:
        for data in _events(raw):
            if data == b"[DONE]":
                done = True
                continue
            doc = orjson.loads(data)
            if not isinstance(doc, dict) or "error" in doc:
                return None
            head = head or doc
            finish = _chunk_choice(doc, parts) or finish
            if doc.get("usage"):
                usage = doc["usage"]
    except (orjson.JSONDecodeError, ValueError):
        return None
    if not done or head is None or finish != "stop":
        return None
    completion: dict[str, Any] = {
        "id": head.get("id", ""),
        "object": "chat.completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts)},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
    }
    if head.get("system_fingerprint") is not None:
        completion["system_fingerprint"] = head["system_fingerprint"]
    if usage is not None:
        completion["usage"] = usage
    return completion


def _data(doc: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def replay(completion: dict[str, Any], include_usage: bool) -> bytes:
    """The SSE body a stream of ``completion`` (a stored chat.completion) would have been."""
    choice = completion["choices"][0]
    message = choice.get("message") or {}
    base: dict[str, Any] = {
        "id": completion.get("id", ""),
        "object": "chat.completion.chunk",
        "created": completion.get("created", 0),
        "model": completion.get("model", ""),
    }
    if completion.get("system_fingerprint") is not None:
        base["system_fingerprint"] = completion["system_fingerprint"]
    if include_usage:
        base["usage"] = None
    delta = {"role": "assistant", "content": message.get("content") or ""}
    finish = choice.get("finish_reason", "stop")
    first = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
    last = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
    out = [_data({**base, "choices": [first]}), _data({**base, "choices": [last]})]
    usage = completion.get("usage")
    if include_usage and usage is not None:
        out.append(_data({**base, "choices": [], "usage": usage}))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def wants_usage(body: dict[str, Any]) -> bool:
    """Whether a streamed request asked for the usage chunk."""
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True
