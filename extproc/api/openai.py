"""OpenAI request bodies, parsed once into a flat, immutable ``ParsedRequest``.

The parser reads only what policy and routing need (model, the text of the prompt,
tools, stream flag, output budget, caller hints) and keeps the decoded body so that
the ``model`` rewrite does not decode it twice. Anything that is not an OpenAI
inference path is not parsed at all: the servicer lets it pass untouched.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.api.errors import ApiError, bad_request

# Rough English average for BPE tokenizers; good enough for budget pre-checks and
# context-window filtering. Response accounting uses the real `usage` counts.
CHARS_PER_TOKEN = 4
# Fixed per-message overhead OpenAI adds for role markers.
TOKENS_PER_MESSAGE = 4


class Endpoint(enum.StrEnum):
    """The OpenAI inference paths RouteIQ understands (path below the prefix)."""

    CHAT_COMPLETIONS = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"


_SUFFIXES = {e.value: e for e in Endpoint}


def match_endpoint(path: str, prefix: str = "/v1") -> Endpoint | None:
    """The endpoint a request path names, or None when RouteIQ should not touch it."""
    path = path.split("?", 1)[0].rstrip("/")
    if not path.startswith(prefix + "/"):
        return None
    return _SUFFIXES.get(path[len(prefix) + 1 :])


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What policy and routing need to know about one OpenAI request.

    ``headers`` holds lower-cased names, and never any client-sent ``x-routeiq-*``
    routing header except the ones listed as client hints (see ``client_hints``).
    """

    endpoint: Endpoint
    method: str
    path: str
    headers: Mapping[str, str]
    body: dict[str, Any]
    body_size: int
    model: str
    stream: bool
    max_tokens: int | None
    user: str | None
    last_user_text: str
    system_text: str
    prompt_chars: int
    prompt_tokens: int
    message_count: int
    tool_count: int
    tool_message_count: int
    has_images: bool
    wants_json: bool

    @property
    def needed_capabilities(self) -> frozenset[str]:
        """Backend capabilities without which this request cannot be served."""
        caps = set()
        if self.tool_count:
            caps.add("tools")
        if self.has_images:
            caps.add("vision")
        if self.wants_json:
            caps.add("json")
        return frozenset(caps)

    @property
    def total_tokens_needed(self) -> int:
        """Prompt estimate plus requested output, for context-window checks."""
        return self.prompt_tokens + (self.max_tokens or 0)


def _content_text(content: Any) -> tuple[str, bool]:
    """Text of a message ``content`` (string or list of parts) and whether it has images."""
    if isinstance(content, str):
        return content, False
    if isinstance(content, list):
        texts: list[str] = []
        images = False
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                if kind in ("text", "input_text", "output_text"):
                    text = part.get("text")
                    if isinstance(text, str):
                        texts.append(text)
                elif kind in ("image_url", "input_image", "image"):
                    images = True
        return "\n".join(texts), images
    return "", False


@dataclass(slots=True)
class _Conversation:
    last_user: str = ""
    system: str = ""
    chars: int = 0
    messages: int = 0
    tool_messages: int = 0
    images: bool = False


def _read_messages(items: list[Any], conv: _Conversation, field: str) -> None:
    for i, msg in enumerate(items):
        if isinstance(msg, str) and field == "input":  # Responses API allows bare strings
            conv.messages += 1
            conv.chars += len(msg)
            conv.last_user = msg
            continue
        if not isinstance(msg, dict):
            raise bad_request(f"'{field}[{i}]' must be an object.", param=f"{field}[{i}]")
        role = msg.get("role")
        text, images = _content_text(msg.get("content"))
        conv.messages += 1
        conv.chars += len(text)
        conv.images = conv.images or images
        if role == "user":
            conv.last_user = text
        elif role in ("system", "developer"):
            conv.system = f"{conv.system}\n{text}" if conv.system else text
        elif role == "tool" or msg.get("type") in ("function_call_output", "function_call"):
            conv.tool_messages += 1


def _read_prompt(value: Any, conv: _Conversation, field: str) -> None:
    """``prompt`` / ``input`` that may be a string, a list of strings, or token ids."""
    if isinstance(value, str):
        conv.last_user = value
        conv.chars += len(value)
        conv.messages += 1
    elif isinstance(value, list):
        if value and all(isinstance(v, str) for v in value):
            conv.last_user = value[-1]
            conv.chars += sum(len(v) for v in value)
            conv.messages += len(value)
        elif value and all(isinstance(v, int) for v in value):
            conv.chars += len(value) * CHARS_PER_TOKEN
        elif value and all(isinstance(v, list) for v in value):
            conv.chars += sum(len(v) for v in value) * CHARS_PER_TOKEN
        elif not value:
            raise bad_request(f"'{field}' must not be empty.", param=field)
        else:
            raise bad_request(f"'{field}' has an unsupported shape.", param=field)
    else:
        raise bad_request(f"'{field}' must be a string or an array.", param=field)


def _int_or_none(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad_request(f"'{name}' must be a non-negative integer.", param=name)
        return value
    return None


def decode_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw``, or a 400 that says what is wrong with it."""
    if not raw:
        raise bad_request("The request body is empty; expected a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.", "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.", "invalid_json")
    return body


def parse_request(
    endpoint: Endpoint,
    method: str,
    path: str,
    headers: Mapping[str, str],
    raw_body: bytes,
) -> ParsedRequest:
    """Parse one OpenAI request body; raise ``ApiError`` (400) on what OpenAI would refuse."""
    body = decode_body(raw_body)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("You must provide a model parameter.", "missing_model", "model")

    conv = _Conversation()
    if endpoint is Endpoint.CHAT_COMPLETIONS:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request(
                "'messages' is required and must be a non-empty array.",
                "missing_messages",
                "messages",
            )
        _read_messages(messages, conv, "messages")
    elif endpoint is Endpoint.RESPONSES:
        value = body.get("input")
        if value is None:
            raise bad_request("'input' is required.", "missing_input", "input")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            _read_messages(value, conv, "input")
        else:
            _read_prompt(value, conv, "input")
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            conv.system = instructions
            conv.chars += len(instructions)
    else:
        field = "prompt" if endpoint is Endpoint.COMPLETIONS else "input"
        if field not in body:
            raise bad_request(f"'{field}' is required.", f"missing_{field}", field)
        _read_prompt(body[field], conv, field)

    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise bad_request("'tools' must be an array.", param="tools")
    tool_count = len(tools) if tools else 0
    if not tool_count and isinstance(body.get("functions"), list):
        tool_count = len(body["functions"])

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", param="stream")

    fmt = body.get("response_format")
    text_cfg = body.get("text")
    wants_json = (isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")) or (
        isinstance(text_cfg, dict)
        and isinstance(text_cfg.get("format"), dict)
        and text_cfg["format"].get("type") in ("json_object", "json_schema")
    )
    user = body.get("user")

    return ParsedRequest(
        endpoint=endpoint,
        method=method,
        path=path,
        headers=headers,
        body=body,
        body_size=len(raw_body),
        model=model,
        stream=stream,
        max_tokens=_int_or_none(body, "max_completion_tokens", "max_tokens", "max_output_tokens"),
        user=user if isinstance(user, str) else None,
        last_user_text=conv.last_user,
        system_text=conv.system,
        prompt_chars=conv.chars,
        prompt_tokens=conv.chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * conv.messages,
        message_count=conv.messages,
        tool_count=tool_count,
        tool_message_count=conv.tool_messages,
        has_images=conv.images,
        wants_json=bool(wants_json),
    )


def rewrite_model(body: dict[str, Any], model: str) -> bytes:
    """The body re-encoded with ``model`` replaced."""
    return orjson.dumps({**body, "model": model})


def patch_body(body: dict[str, Any], overrides: Mapping[str, Any]) -> bytes:
    """The body re-encoded with top-level ``overrides`` (a decision's ``body_overrides``)."""
    return orjson.dumps({**body, **overrides})


__all__ = [
    "ApiError",
    "Endpoint",
    "ParsedRequest",
    "decode_body",
    "match_endpoint",
    "parse_request",
    "patch_body",
    "rewrite_model",
]
