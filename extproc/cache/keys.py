"""Cache keys: the normalised request, hashed.

Two requests share the **exact key** when they ask the same model or profile for the
same conversation with the same answer-changing parameters. Normalisation removes
only what cannot change the answer: surrounding whitespace and ``\\r\\n`` line ends in
message text, text given as content parts rather than a string, integral floats
(``0.0`` is ``0``), null fields, ``n: 1``, the ``max_completion_tokens`` /
``max_tokens`` synonym, and the fields listed in ``IGNORED`` (delivery, identity and
billing fields). Every other body field is part of the key, so a parameter this module
has never heard of keeps requests apart rather than merging them.

The **frame key** is the exact key with the last user turn left out: a semantic match
requires the same frame (model, parameters, system prompt and earlier turns) and
compares only the last user turn by meaning. It also names the embedder, whose vectors
only compare with its own, and the turn's **literals**: its numbers (ordinal words
included) in order, and whether it is negated. A sentence embedding barely moves when
"100" becomes "50", "first" becomes "second" or a "not" appears, yet each is another
question (docs/cache.md measures it), so such turns never share a frame.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.api.openai import ParsedRequest

# Body fields that never change the answer's content.
IGNORED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    }
)
SYNONYMS = {"max_completion_tokens": "max_tokens"}
_LAST_USER = "\x00last-user-turn"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*|#[a-z]+")  # numbers and marked ordinals
_ORDINAL = re.compile(
    r"\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last)\b", re.I
)
_NEGATION = re.compile(r"\b(?:not|no|never|without|none|nor|neither)\b|n't\b", re.I)


@dataclass(frozen=True, slots=True)
class RequestKeys:
    """The keys of one request; ``frame`` is None when it cannot be matched by meaning."""

    exact: str
    frame: str | None


def _value(value: Any) -> Any:
    if type(value) is float and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value


def _text(content: Any) -> Any:
    """Message content as one normalised string when it is text only, else as given."""
    if isinstance(content, str):
        return content.replace("\r\n", "\n").strip()
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "\n".join(p["text"] for p in content).replace("\r\n", "\n").strip()
    return _value(content)


def _message(msg: Any) -> Any:
    if not isinstance(msg, dict):
        return _value(msg)
    out = {k: _value(v) for k, v in msg.items() if v is not None and k != "content"}
    out["content"] = _text(msg.get("content"))
    return out


def parameters(body: dict[str, Any]) -> dict[str, Any]:
    """The answer-changing parameters of a body, normalised."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name in IGNORED or value is None:
            continue
        if name == "n" and value == 1:
            continue
        out[SYNONYMS.get(name, name)] = _value(value)
    return out


def literals(text: str) -> list[Any]:
    """What a paraphrase must keep: the numbers and ordinals in order, and negation."""
    lowered = _ORDINAL.sub(lambda m: f" #{m.group(1).lower()} ", text)
    numbers = _NUMBER.findall(lowered)
    return [numbers, bool(_NEGATION.search(text))]


def _digest(parts: list[Any]) -> str:
    raw = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:32]


def _last_user(messages: list[Any]) -> int | None:
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if isinstance(msg, dict) and msg.get("role") == "user":
            return i
    return None


def request_keys(
    request: ParsedRequest, asked: str, namespace: str, embedder: str | None
) -> RequestKeys:
    """The exact and frame keys of a chat request. ``asked`` is the model or profile
    the request is served under (after aliases and policy); ``embedder`` names the
    embedding model (None: no semantic matching, no frame key)."""
    raw = request.body.get("messages")
    messages = [_message(m) for m in raw] if isinstance(raw, list) else []
    params = parameters(request.body)
    head = [namespace, asked, request.endpoint.value, params]
    exact = _digest([*head, messages])
    last = _last_user(messages) if embedder is not None else None
    if last is None:
        return RequestKeys(exact, None)
    framed = [*messages]
    framed[last] = {**messages[last], "content": _LAST_USER}
    guard = literals(request.last_user_text)
    return RequestKeys(exact, _digest([*head, embedder, framed, guard]))


def tenant_id(tenant: str) -> str:
    """A short fixed-alphabet id for a tenant name (safe in store keys)."""
    return hashlib.sha256(tenant.encode()).hexdigest()[:16]
