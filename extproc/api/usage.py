"""Token usage from OpenAI responses: JSON bodies and incremental SSE streams.

Streaming is on the hot path of every streamed byte, so ``StreamUsageParser.feed``
returns the very chunk it was given (no copy, no delay) unless it was asked to strip
the usage chunk. It keeps only the unfinished trailing line between calls.

Stripping exists because RouteIQ injects ``stream_options.include_usage`` into
streamed chat/completions requests to learn the real usage; when the client had not
asked for it, the client must see exactly the stream it would have seen: the extra
chunk (``choices: []`` with ``usage``) is removed, and so is the ``"usage":null``
member that OpenAI then adds to every other chunk. Only complete events are forwarded
in that mode: a partial event is held until its blank line arrives (an SSE client
cannot use half an event anyway).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.api.openai import CHARS_PER_TOKEN, Endpoint

_EOL = re.compile(rb"\r\n|\r|\n")
_KEEP, _DROP, _CLEAN = 0, 1, 2  # what strip mode does with a finished event
# What OpenAI-compatible servers write for the null member, compact or spaced.
_NULL_USAGE = (b',"usage":null', b'"usage":null,', b', "usage": null', b'"usage": null, ')


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one response; ``estimated`` when no ``usage`` was reported."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False


def _int(obj: Any, *names: str) -> int:
    if isinstance(obj, dict):
        for name in names:
            value = obj.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
    return 0


def usage_from_object(usage: Any) -> Usage | None:
    """Normalise a ``usage`` object: chat/completions/embeddings (``prompt_tokens``...)
    or the Responses API (``input_tokens``, ``output_tokens``)."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage, "prompt_tokens", "input_tokens")
    completion = _int(usage, "completion_tokens", "output_tokens")
    total = _int(usage, "total_tokens") or prompt + completion
    in_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    out_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    return Usage(
        prompt,
        completion,
        total,
        cached_tokens=_int(in_details, "cached_tokens"),
        reasoning_tokens=_int(out_details, "reasoning_tokens"),
    )


def usage_from_json(body: bytes) -> Usage | None:
    """Usage of a non-streaming response body, or None (not JSON, error, no usage)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if "usage" not in doc and isinstance(doc.get("response"), dict):
        doc = doc["response"]
    return usage_from_object(doc.get("usage"))


def ensure_stream_usage(body: dict[str, Any], endpoint: Endpoint) -> tuple[dict[str, Any], bool]:
    """The request body with ``stream_options.include_usage: true`` for a streamed
    chat/completions request, and whether RouteIQ added it (then pass
    ``strip_usage=True`` to the parser). Other requests are returned unchanged: the
    Responses API always reports usage in ``response.completed``."""
    if body.get("stream") is not True or endpoint not in (
        Endpoint.CHAT_COMPLETIONS,
        Endpoint.COMPLETIONS,
    ):
        return body, False
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body, False
    merged = (
        {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
    )
    return {**body, "stream_options": merged}, True


def estimate_usage(prompt_tokens: int, completion_chars: int) -> Usage:
    completion = math.ceil(completion_chars / CHARS_PER_TOKEN)
    return Usage(prompt_tokens, completion, prompt_tokens + completion, estimated=True)


def _delta_chars(doc: dict[str, Any]) -> int:
    """Characters of generated content in one chunk/event (for the fallback estimate)."""
    kind = doc.get("type")
    if isinstance(kind, str):  # Responses API events
        delta = doc.get("delta")
        return len(delta) if kind.endswith(".delta") and isinstance(delta, str) else 0
    chars = 0
    choices = doc.get("choices")
    if not isinstance(choices, list):
        return 0
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text = choice.get("text")  # legacy completions
        if isinstance(text, str):
            chars += len(text)
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        for name in ("content", "reasoning_content", "refusal"):
            value = delta.get(name)
            if isinstance(value, str):
                chars += len(value)
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                args = fn.get("arguments") if isinstance(fn, dict) else None
                if isinstance(args, str):
                    chars += len(args)
    return chars


class StreamUsageParser:
    """Feed an SSE response body chunk by chunk; read ``usage`` (or ``result()``) at the end.

    Handles events split anywhere across chunks, ``\\n``/``\\r\\n``/``\\r`` line ends,
    multi-line ``data:`` fields, comments and ``[DONE]``. One parser per response.
    """

    def __init__(self, *, strip_usage: bool = False) -> None:
        self.strip_usage = strip_usage
        self.usage: Usage | None = None
        self.completion_chars = 0
        self.events = 0
        self.done = False
        self._buf = b""  # unparsed tail (strip: every byte of the unfinished event)
        self._scan = 0  # strip mode: offset in _buf where unparsed lines start
        self._data: list[bytes] = []
        self._cr_pending = False  # last chunk ended in \r: a leading \n belongs to it
        self._last_dropped = False

    def feed(self, chunk: bytes) -> bytes:
        """Bytes to forward now for ``chunk``: ``chunk`` itself unless stripping."""
        if not chunk:
            return chunk
        skip_lf = self._cr_pending and chunk[:1] == b"\n"
        self._cr_pending = False
        if not self.strip_usage:
            body = chunk[1:] if skip_lf else chunk
            self._parse_lines(self._buf + body if self._buf else body, keep_event=False)
            return chunk
        lead = b""
        if skip_lf and self._buf:  # the \r ended a line inside the held event
            buf = self._buf + chunk
            self._scan += 1
        elif skip_lf:  # the \r ended an event: its \n shares that event's fate
            lead = b"" if self._last_dropped else b"\n"
            buf = chunk[1:]
        else:
            buf = self._buf + chunk
        out = self._parse_lines(buf, keep_event=True)
        return lead + out if lead else out

    def finish(self) -> bytes:
        """End of stream: parse an unterminated last event; bytes still to forward."""
        buf, self._buf = self._buf, b""
        tail = buf[self._scan :] if self.strip_usage else buf
        self._scan = 0
        if tail:
            self._line(tail)
        action = self._dispatch()
        if not self.strip_usage or action == _DROP:
            return b""
        return _without_null_usage(buf) if action == _CLEAN else buf

    def result(self, prompt_tokens: int) -> Usage:
        """The reported usage, or an estimate: ``prompt_tokens`` (the request estimate)
        and the streamed content length at ``CHARS_PER_TOKEN``."""
        return self.usage or estimate_usage(prompt_tokens, self.completion_chars)

    def _parse_lines(self, buf: bytes, *, keep_event: bool) -> bytes:
        pos = self._scan if keep_event else 0
        event_start = 0
        out: list[bytes] = []
        size = len(buf)
        for m in _EOL.finditer(buf, pos):
            line = buf[pos : m.start()]
            pos = m.end()
            if pos == size and m.group() == b"\r":
                self._cr_pending = True
            if line:
                self._line(line)
                continue
            action = self._dispatch()
            if keep_event:
                if action != _DROP:
                    raw = buf[event_start:pos]
                    out.append(_without_null_usage(raw) if action == _CLEAN else raw)
                self._last_dropped = action == _DROP
                event_start = pos
        if keep_event:
            self._buf = buf[event_start:]
            self._scan = pos - event_start
            return b"".join(out)
        self._buf = buf[pos:]
        return b""

    def _line(self, line: bytes) -> None:
        if line[:5] == b"data:":
            value = line[5:]
            self._data.append(value[1:] if value[:1] == b" " else value)
        # event:, id:, retry: and ":" comments carry nothing RouteIQ needs.

    def _dispatch(self) -> int:
        """Handle the finished event; say what strip mode must do with its bytes."""
        if not self._data:
            return _KEEP
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        self._data = []
        self.events += 1
        if data == b"[DONE]":
            self.done = True
            return _KEEP
        if data[:1] != b"{":
            return _KEEP
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return _KEEP
        if not isinstance(doc, dict):
            return _KEEP
        self.completion_chars += _delta_chars(doc)
        if "type" in doc:  # Responses API: usage is always in response.completed
            if doc["type"] in ("response.completed", "response.incomplete"):
                response = doc.get("response")
                if isinstance(response, dict):
                    self.usage = usage_from_object(response.get("usage")) or self.usage
            return _KEEP
        if "usage" not in doc:
            return _KEEP
        usage = doc["usage"]
        if usage is None:  # present only because include_usage was injected
            return _CLEAN if self.strip_usage else _KEEP
        self.usage = usage_from_object(usage) or self.usage
        return _DROP if self.strip_usage and doc.get("choices") == [] else _KEEP


def _without_null_usage(raw: bytes) -> bytes:
    """An event's bytes without the ``"usage":null`` member of its chunk. A quote inside a
    JSON string is always escaped, so these patterns can only match the member itself."""
    for pattern in _NULL_USAGE:
        if pattern in raw:
            return raw.replace(pattern, b"", 1)
    return raw
