"""OpenAI request bodies, parsed once into a flat, immutable ``ParsedRequest``.

The parser reads only what policy and routing need (model, the text of the prompt,
tools, stream flag, output budget) and keeps the decoded body so that the ``model``
rewrite does not decode it twice. Anything that is not an OpenAI inference path is
not parsed at all: the servicer lets it pass untouched.

Every request is bounded here, at parse time, so that nothing downstream (policy
input encoding, the Rego engines, detectors, the classifier, logs) meets a shape it
cannot handle: nesting depth, ``model`` length and the counts of messages, content
parts, tools and inputs have limits (``ParseLimits``); past one, the request is an
OpenAI-style 400 that names the limit and never echoes the offending value. The
work per request is linear in the body: one decode, one bounded walk for depth
(skipped when the body holds too few brackets to nest that deep), one pass over
the messages.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds checked at parse time; a request past one is refused with a 400.

    ``max_depth`` counts nested JSON objects and arrays, the body object being level 1.
    It stays far below what the policy input can carry: orjson encodes at most 255
    levels, regorus reads at most 128, and the body sits two levels deep in the input
    document. The counts bound per-request work whatever ``maxBodyBytes`` allows.
    """

    max_depth: int = 64
    max_model_chars: int = 256
    max_messages: int = 100_000
    max_content_parts: int = 10_000
    max_tools: int = 1_024
    max_inputs: int = 100_000


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    """What policy and routing need to know about one OpenAI request.

    ``headers`` holds the request headers exactly as the adapter passed them (names
    lower-cased, pseudo-headers such as ``:authority`` included). Nothing is removed
    here: stripping client-sent ``x-routeiq-*`` headers is the adapters' job, and a
    header that names the caller counts only if ``spec.identity.trustedHeaders``
    declares it (``extproc.api.identity``).
    ``body`` is the decoded JSON object (shared, treat it as read-only) and
    ``raw_body`` the bytes it was decoded from (policies get it only with
    ``spec.policy.includeRawBody``). ``user`` is the body's ``user`` field: sent by
    the client, so not an identity unless ``spec.identity.bodyUser`` says so.
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
    raw_body: bytes = b""

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


def _too_many(what: str, limit: int, param: str) -> ApiError:
    return bad_request(
        f"'{param}' has more than {limit} {what}; this gateway accepts at most {limit}.",
        f"too_many_{what.replace(' ', '_')}",
        param,
    )


def _content_text(content: Any, limits: ParseLimits, param: str) -> tuple[str, bool]:
    """Text of a message ``content`` (string or list of parts) and whether it has images."""
    if isinstance(content, str):
        return content, False
    if isinstance(content, list):
        if len(content) > limits.max_content_parts:
            raise _too_many("content parts", limits.max_content_parts, param)
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
    system_parts: list[str] = field(default_factory=list)  # joined once, at the end
    chars: int = 0
    messages: int = 0
    tool_messages: int = 0
    images: bool = False


def _read_messages(
    items: list[Any], conv: _Conversation, field_name: str, limits: ParseLimits
) -> None:
    if len(items) > limits.max_messages:
        raise _too_many("messages", limits.max_messages, field_name)
    for i, msg in enumerate(items):
        if isinstance(msg, str) and field_name == "input":  # Responses API allows bare strings
            conv.messages += 1
            conv.chars += len(msg)
            conv.last_user = msg
            continue
        if not isinstance(msg, dict):
            where = f"{field_name}[{i}]"
            raise bad_request(f"'{where}' must be an object.", param=where)
        role = msg.get("role")
        text, images = _content_text(msg.get("content"), limits, field_name)
        conv.messages += 1
        conv.chars += len(text)
        conv.images = conv.images or images
        if role == "user":
            conv.last_user = text
        elif role in ("system", "developer"):
            if text:
                conv.system_parts.append(text)
        elif role == "tool" or msg.get("type") in ("function_call_output", "function_call"):
            conv.tool_messages += 1


def _read_prompt(value: Any, conv: _Conversation, field_name: str, limits: ParseLimits) -> None:
    """``prompt`` / ``input`` that may be a string, a list of strings, or token ids."""
    if isinstance(value, str):
        conv.last_user = value
        conv.chars += len(value)
        conv.messages += 1
    elif isinstance(value, list):
        if len(value) > limits.max_inputs:
            raise _too_many("inputs", limits.max_inputs, field_name)
        if value and all(isinstance(v, str) for v in value):
            conv.last_user = value[-1]
            conv.chars += sum(len(v) for v in value)
            conv.messages += len(value)
        elif value and all(isinstance(v, int) for v in value):
            conv.chars += len(value) * CHARS_PER_TOKEN
        elif value and all(isinstance(v, list) for v in value):
            conv.chars += sum(len(v) for v in value) * CHARS_PER_TOKEN
        elif not value:
            raise bad_request(f"'{field_name}' must not be empty.", param=field_name)
        else:
            raise bad_request(f"'{field_name}' has an unsupported shape.", param=field_name)
    else:
        raise bad_request(f"'{field_name}' must be a string or an array.", param=field_name)


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


def check_depth(raw: bytes, body: dict[str, Any], limit: int) -> None:
    """Refuse a body nesting objects/arrays deeper than ``limit`` (the body is level 1).

    A body with at most ``limit`` opening brackets in its text (brackets inside strings
    included) cannot nest deeper, and is not walked at all: that is nearly every
    request. Otherwise one breadth-first pass over the containers (scalars are only
    type-checked) stops at the first level past the limit: linear, no recursion.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return
    level: list[Any] = [body]
    depth = 1
    while level:
        deeper: list[Any] = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                kind = type(child)  # orjson yields exact dicts and lists
                if kind is dict or kind is list:
                    deeper.append(child)
        if not deeper:
            return
        depth += 1
        if depth > limit:
            raise bad_request(
                f"The request body nests objects or arrays more than {limit} levels deep.",
                "nesting_too_deep",
            )
        level = deeper


def _read_model(body: dict[str, Any], limits: ParseLimits) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("You must provide a model parameter.", "missing_model", "model")
    if len(model) > limits.max_model_chars:
        raise bad_request(
            f"The model parameter is longer than {limits.max_model_chars} characters.",
            "model_too_long",
            "model",
        )
    return model


def _read_conversation(
    endpoint: Endpoint, body: dict[str, Any], limits: ParseLimits
) -> _Conversation:
    conv = _Conversation()
    if endpoint is Endpoint.CHAT_COMPLETIONS:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request(
                "'messages' is required and must be a non-empty array.",
                "missing_messages",
                "messages",
            )
        _read_messages(messages, conv, "messages", limits)
    elif endpoint is Endpoint.RESPONSES:
        value = body.get("input")
        if value is None:
            raise bad_request("'input' is required.", "missing_input", "input")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            _read_messages(value, conv, "input", limits)
        else:
            _read_prompt(value, conv, "input", limits)
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            conv.system_parts = [instructions]
            conv.chars += len(instructions)
    else:
        name = "prompt" if endpoint is Endpoint.COMPLETIONS else "input"
        if name not in body:
            raise bad_request(f"'{name}' is required.", f"missing_{name}", name)
        _read_prompt(body[name], conv, name, limits)
    return conv


def _tool_count(body: dict[str, Any], limits: ParseLimits) -> int:
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise bad_request("'tools' must be an array.", param="tools")
    functions = body.get("functions")
    for name, value in (("tools", tools), ("functions", functions)):
        if isinstance(value, list) and len(value) > limits.max_tools:
            raise _too_many("tools", limits.max_tools, name)
    if tools:
        return len(tools)
    return len(functions) if isinstance(functions, list) else 0


def _wants_json(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    text_cfg = body.get("text")
    return (isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")) or (
        isinstance(text_cfg, dict)
        and isinstance(text_cfg.get("format"), dict)
        and text_cfg["format"].get("type") in ("json_object", "json_schema")
    )


def parse_request(
    endpoint: Endpoint,
    method: str,
    path: str,
    headers: Mapping[str, str],
    raw_body: bytes,
    limits: ParseLimits = DEFAULT_LIMITS,
) -> ParsedRequest:
    """Parse one OpenAI request body; raise ``ApiError`` (400) on what OpenAI would refuse
    and on anything past ``limits``."""
    body = decode_body(raw_body)
    model = _read_model(body, limits)
    check_depth(raw_body, body, limits.max_depth)
    conv = _read_conversation(endpoint, body, limits)
    tool_count = _tool_count(body, limits)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean.", param="stream")
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
        system_text="\n".join(conv.system_parts),
        prompt_chars=conv.chars,
        prompt_tokens=conv.chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * conv.messages,
        message_count=conv.messages,
        tool_count=tool_count,
        tool_message_count=conv.tool_messages,
        has_images=conv.images,
        wants_json=bool(_wants_json(body)),
        raw_body=raw_body,
    )


def rewrite_model(body: dict[str, Any], model: str) -> bytes:
    """The body re-encoded with ``model`` replaced."""
    return orjson.dumps({**body, "model": model})


def patch_body(body: dict[str, Any], overrides: Mapping[str, Any]) -> bytes:
    """The body re-encoded with top-level ``overrides`` (a decision's ``body_overrides``)."""
    return orjson.dumps({**body, **overrides})


__all__ = [
    "DEFAULT_LIMITS",
    "ApiError",
    "Endpoint",
    "ParseLimits",
    "ParsedRequest",
    "check_depth",
    "decode_body",
    "parse_request",
    "patch_body",
    "rewrite_model",
]
