"""The response of a cache miss, collected for storing: bounded, checked, normalised.

The adapter feeds the upstream's body chunks (as received, before any change made for
the client) and calls ``finish`` at the end of the stream. Only an answer a cache may
serve is kept: a ``chat.completion`` with one choice, text content and finish reason
``stop`` (a stream is reassembled into one, see ``extproc.cache.sse``), at most
``maxEntryBytes`` (more is dropped while it streams, never held), in identity or gzip
encoding. Anything else is a skip reason, counted by the cache.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.api.openai import CHARS_PER_TOKEN
from extproc.cache.sse import assemble

_DONE = b"[DONE]"


@dataclass(frozen=True, slots=True)
class Captured:
    """A storable answer: the completion's JSON bytes and its token usage."""

    body: bytes
    model: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool


def _check(doc: Any) -> str | None:
    """Why ``doc`` is not a servable chat completion (None: it is)."""
    if not isinstance(doc, dict) or doc.get("object", "chat.completion") != "chat.completion":
        return "not_completion"
    choices = doc.get("choices")
    if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
        return "choices"
    choice = choices[0]
    if choice.get("finish_reason") != "stop":
        return "finish_reason"
    message = choice.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("content"), str):
        return "not_text"
    if message.get("tool_calls") or message.get("function_call"):
        return "tools"
    return None


def _usage(doc: dict[str, Any], prompt_estimate: int) -> tuple[int, int, bool]:
    usage = doc.get("usage")
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int) and isinstance(completion, int):
            return prompt, completion, False
    text = doc["choices"][0]["message"]["content"]
    return prompt_estimate, math.ceil(len(text) / CHARS_PER_TOKEN), True


def _usage_doc(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class ResponseCapture:
    """Collects one response body (``stream``: SSE) up to ``max_bytes``."""

    __slots__ = (
        "_chunks",
        "_encoding",
        "_over",
        "_prompt_tokens",
        "_size",
        "done",
        "max_bytes",
        "stream",
    )

    def __init__(self, *, stream: bool, encoding: str, max_bytes: int, prompt_tokens: int) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self._encoding = encoding.strip().lower()
        self._prompt_tokens = prompt_tokens
        self._chunks: list[bytes] = []
        self._size = 0
        self._over = False
        # A stream is complete at its ``data: [DONE]``: storing then, before that chunk
        # is forwarded, makes the entry visible before the client has its answer.
        self.done = False

    def feed(self, chunk: bytes) -> None:
        if self._over or not chunk:
            return
        self._size += len(chunk)
        if self._size > self.max_bytes:
            self._over = True
            self._chunks = []
            return
        if self.stream and self._encoding in ("", "identity"):
            tail = self._chunks[-1][-8:] if self._chunks else b""
            self.done = _DONE in tail + chunk[:8] or _DONE in chunk
        self._chunks.append(chunk)

    def _decoded(self) -> bytes | str:
        raw = b"".join(self._chunks)
        if self._encoding in ("", "identity"):
            return raw
        if self._encoding not in ("gzip", "x-gzip", "deflate"):
            return "encoding"
        try:
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
            out = inflater.decompress(raw, self.max_bytes + 1)
        except zlib.error:
            return "encoding"
        return "too_large" if len(out) > self.max_bytes else out

    def finish(self) -> Captured | str:
        """The storable answer, or why there is none."""
        if self._over:
            return "too_large"
        raw = self._decoded()
        if isinstance(raw, str):
            return raw
        if self.stream:
            doc: Any = assemble(raw)
            if doc is None:
                return "stream"
        else:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return "not_json"
        reason = _check(doc)
        if reason is not None:
            return reason
        prompt, completion, estimated = _usage(doc, self._prompt_tokens)
        if self.stream:
            # A stream without a usage chunk gets the estimate: a replay to a client
            # asking ``include_usage`` must have one to send.
            doc.setdefault("usage", _usage_doc(prompt, completion))
            raw = orjson.dumps(doc)
        return Captured(raw, str(doc.get("model", "")), prompt, completion, estimated)
