"""The policy input document: OPA's Envoy plugin shape plus a ``routeiq`` object.

Existing OPA Envoy policies read ``input.attributes.request.http.*``,
``input.parsed_path``, ``input.parsed_query`` and ``input.parsed_body``; they work here
unchanged. RouteIQ adds what it already computed (``input.routeiq``) so policies do
not re-derive token estimates or identities in Rego.

Bounded by default: ``parsed_body`` carries the body's own fields (model, stream,
max_tokens, temperature, metadata, user...) but not the content fields (messages,
input, prompt, instructions, tools, functions), which the ``routeiq`` object
summarises (counts, tool names, detector findings, classification). Encoding a whole
prompt for every evaluation costs time for nothing most policies read. With
``spec.policy.includeRawBody: true`` the whole decoded body is ``parsed_body`` and the
raw text is ``attributes.request.http.body``, as in OPA's Envoy plugin; the parser's
limits (``extproc.api.openai.ParseLimits``: depth 64) keep the document within what
orjson (255 levels) and regorus (128) accept.

Secrets never enter the document: the values of ``authorization``, API-key and cookie
headers (``PolicySpec.redactHeaders``) are replaced by ``sha256:<16 hex>`` of the
credential (the same hash as ``routeiq.caller.api_key_hash``), so a policy can still
match a specific key without ever seeing it, and decision logs stay clean.
The full example and schema are in ``docs/policy.md``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qs

from extproc.api.identity import Caller, hash_api_key
from extproc.api.openai import ParsedRequest
from extproc.cache.rules import input_view as cache_view
from extproc.policy.spec import DEFAULT_REDACTED_HEADERS

REDACTED_PREFIX = "sha256:"

# Body fields that carry the prompt, the conversation or tool definitions: the bulk of
# a request. They reach policies only with includeRawBody.
CONTENT_FIELDS = frozenset({"messages", "input", "prompt", "instructions", "tools", "functions"})


def redact_headers(
    headers: Mapping[str, str], redact: Collection[str] = DEFAULT_REDACTED_HEADERS
) -> dict[str, str]:
    """A copy of ``headers`` with credential values replaced by their short hash."""
    out = dict(headers)
    for name in redact:
        value = out.get(name)
        if value is not None:
            out[name] = REDACTED_PREFIX + hash_api_key(value)
    return out


def split_path(path: str) -> tuple[list[str], dict[str, list[str]]]:
    """``parsed_path`` (segments) and ``parsed_query`` (name -> values) of a request path."""
    raw_path, _, query = path.partition("?")
    segments = [s for s in raw_path.split("/") if s]
    return segments, parse_qs(query, keep_blank_values=True) if query else {}


def body_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without its ``CONTENT_FIELDS``: what ``parsed_body`` holds by default."""
    return {k: v for k, v in body.items() if k not in CONTENT_FIELDS}


def tool_names(body: Mapping[str, Any]) -> list[str]:
    """Names of the tools a request declares (a built-in tool without a name: its type)."""
    tools = body.get("tools") or body.get("functions")
    names: list[str] = []
    if not isinstance(tools, list):
        return names
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        function = tool.get("function")
        named = function if isinstance(function, dict) else tool
        name = named.get("name", tool.get("type"))
        if isinstance(name, str):
            names.append(name)
    return names


def build_input(
    request: ParsedRequest,
    caller: Caller,
    *,
    host: str,
    profile: str | None,
    classification: Mapping[str, Any] | None,
    limits: Mapping[str, Any] | None,
    findings: Mapping[str, int],
    include_raw_body: bool = False,
    raw_body: bytes | None = None,
    redact: Collection[str] = DEFAULT_REDACTED_HEADERS,
) -> dict[str, Any]:
    """The input document for one request.

    ``profile`` is the routing profile the request asked for (``auto``, ``eco``...), or
    None for an explicit model. ``classification`` is the router's result
    ``{category, tier, score, scores}`` when it ran before policy, else None.
    ``limits`` is the caller's quota state when the state store provides it.
    ``findings`` are detector counts by kind (``Detectors.scan_body``).
    ``include_raw_body`` (``spec.policy.includeRawBody``) puts the whole decoded body in
    ``parsed_body`` (the parser's own dict, not copied: treat it as read-only) and the
    raw text (``raw_body``, by default the bytes the request was parsed from) in
    ``attributes.request.http.body``; without it ``parsed_body`` is ``body_fields``.
    """
    parsed_path, parsed_query = split_path(request.path)
    http: dict[str, Any] = {
        "method": request.method,
        "path": request.path,
        "host": host,
        "headers": redact_headers(request.headers, redact),
        "size": request.body_size,
    }
    if include_raw_body:
        raw = request.raw_body if raw_body is None else raw_body
        http["body"] = raw.decode("utf-8", "replace")
    return {
        "attributes": {"request": {"http": http}},
        "parsed_path": parsed_path,
        "parsed_query": parsed_query,
        "parsed_body": request.body if include_raw_body else body_fields(request.body),
        "routeiq": {
            "endpoint": request.endpoint.value,
            "model": request.model,
            "profile": profile,
            "prompt_tokens": request.prompt_tokens,
            "max_tokens": request.max_tokens,
            "stream": request.stream,
            "tool_count": request.tool_count,
            "tool_names": tool_names(request.body) if request.tool_count else [],
            "message_count": request.message_count,
            "has_images": request.has_images,
            "caller": {**caller.as_dict(), "claims": caller.claims},
            "classification": dict(classification) if classification is not None else None,
            "limits": dict(limits) if limits is not None else None,
            "findings": dict(findings),
            "cache": cache_view(request),
        },
    }


def _team_names(data: Mapping[str, Any]) -> list[str]:
    """Team names a data document mentions (any top-level ``*.teams`` object), best effort."""
    names: list[str] = []
    for value in data.values():
        teams = value.get("teams") if isinstance(value, Mapping) else None
        if isinstance(teams, Mapping):
            names.extend(str(k) for k in list(teams)[:6])
    return names


def probe_inputs(
    data: Mapping[str, Any], *, include_raw_body: bool = False
) -> list[dict[str, Any]]:
    """Varied input documents a new engine is checked with before it may serve.

    They vary what policies usually branch on (team, model, size, classification
    header, detector findings), with teams taken from the data, so that the embedded
    VM is compared with the interpreter on more than one path. Their body part has
    the shape ``includeRawBody`` gives real requests.
    """
    probes: list[dict[str, Any]] = []
    teams: list[str | None] = [None, "probe", *_team_names(data)]
    for i, team in enumerate(teams):
        for model in ("auto", "gpt-4o", "gpt-4o-mini"):
            for big in (False, True):
                doc = sample_input(include_raw_body=include_raw_body)
                rq = doc["routeiq"]
                rq["caller"]["team"] = team
                rq["model"] = doc["parsed_body"]["model"] = model
                rq["profile"] = "auto" if model == "auto" else None
                rq["prompt_tokens"], rq["max_tokens"] = (200_000, 4_000) if big else (50, None)
                if (i + big) % 2:
                    doc["attributes"]["request"]["http"]["headers"]["x-data-classification"] = (
                        "confidential"
                    )
                if (i + len(model)) % 3 == 0:
                    rq["findings"] = {"email": 1, "secret": 1, "payment_card": 1}
                probes.append(doc)
    return probes


def sample_input(*, include_raw_body: bool = False) -> dict[str, Any]:
    """A representative input document: the probe every engine is test-compiled with."""
    body: dict[str, Any] = {"model": "auto"}
    http: dict[str, Any] = {
        "method": "POST",
        "path": "/v1/chat/completions",
        "host": "routeiq.local",
        "headers": {"content-type": "application/json", "x-team": "probe"},
        "size": 64,
    }
    if include_raw_body:
        body["messages"] = [{"role": "user", "content": "hello"}]
        http["body"] = '{"model":"auto","messages":[{"role":"user","content":"hello"}]}'
    return {
        "attributes": {"request": {"http": http}},
        "parsed_path": ["v1", "chat", "completions"],
        "parsed_query": {},
        "parsed_body": body,
        "routeiq": {
            "endpoint": "chat/completions",
            "model": "auto",
            "profile": "auto",
            "prompt_tokens": 6,
            "max_tokens": None,
            "stream": False,
            "tool_count": 0,
            "tool_names": [],
            "message_count": 1,
            "has_images": False,
            "caller": {"team": "probe", "user": None, "api_key_hash": None, "source": "headers"},
            "classification": None,
            "limits": None,
            "findings": {},
            "cache": {"bypass": None, "cache_control": None},
        },
    }
