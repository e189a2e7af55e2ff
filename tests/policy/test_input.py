"""The input document: OPA Envoy shape, routeiq object, secrets redacted."""

from __future__ import annotations

import orjson

from extproc.api.identity import IdentitySpec, identify
from extproc.api.openai import Endpoint, parse_request
from extproc.policy import Detectors, build_input

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"


def _request(body: dict[str, object], headers: dict[str, str]) -> tuple[object, bytes]:
    raw = orjson.dumps(body)
    return parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions?trace=1&x=", headers, raw
    ), raw


def test_shape_and_redaction() -> None:
    headers = {
        "authorization": f"Bearer {SECRET}",
        "x-api-key": "k-123",
        "x-team": "research",
        "cookie": "session=abc",
        "content-type": "application/json",
    }
    body = {
        "model": "gpt-4o",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "mail bob@example.com about the plan"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }
    request, _ = _request(body, headers)
    trusted = IdentitySpec.model_validate({"trustedHeaders": {"team": "x-team"}})
    caller = identify(headers, trusted, None)
    findings = Detectors().scan_body(body)
    doc = build_input(
        request,
        caller,
        host="gw.local",
        profile=None,  # type: ignore[arg-type]
        classification={
            "category": "code",
            "tier": "premium",
            "score": 0.9,
            "scores": {"code": 0.9},
        },
        limits=None,
        findings=findings,
    )
    http = doc["attributes"]["request"]["http"]
    assert http["method"] == "POST" and http["host"] == "gw.local"
    assert http["path"] == "/v1/chat/completions?trace=1&x="
    assert "body" not in http
    assert doc["parsed_path"] == ["v1", "chat", "completions"]
    assert doc["parsed_query"] == {"trace": ["1"], "x": [""]}
    # without includeRawBody: the body's own fields, not the prompt, tools or messages
    assert doc["parsed_body"] == {"model": "gpt-4o", "max_tokens": 50, "stream": True}
    assert doc["routeiq"]["tool_names"] == ["f"]
    rq = doc["routeiq"]
    assert rq["model"] == "gpt-4o" and rq["max_tokens"] == 50 and rq["stream"] is True
    assert rq["tool_count"] == 1 and rq["prompt_tokens"] > 0
    assert rq["caller"] == {**caller.as_dict(), "claims": None}
    assert rq["caller"]["team"] == "research"
    assert rq["classification"]["tier"] == "premium" and rq["limits"] is None
    assert rq["findings"] == {"email": 1}
    # no credential anywhere in the document; the hash matches the caller's key hash
    text = orjson.dumps(doc).decode()
    for secret in (SECRET, "k-123", "session=abc"):
        assert secret not in text
    assert http["headers"]["authorization"] == f"sha256:{caller.api_key_hash}"
    assert http["headers"]["x-api-key"].startswith("sha256:")


def test_raw_body_only_on_request() -> None:
    body = {
        "model": "m",
        "user": "u",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "lookup"}}],
    }
    request, raw = _request(body, {})
    caller = identify({}, IdentitySpec(), None)
    doc = build_input(
        request,
        caller,
        host="h",
        profile="auto",  # type: ignore[arg-type]
        classification=None,
        limits={"remaining": 5},
        findings={},
        include_raw_body=True,
    )
    http = doc["attributes"]["request"]["http"]
    assert http["body"] == raw.decode()  # the bytes the parser read, kept by ParsedRequest
    assert doc["parsed_body"] is request.body  # type: ignore[attr-defined]
    assert doc["routeiq"]["profile"] == "auto" and doc["routeiq"]["limits"] == {"remaining": 5}

    doc = build_input(
        request,
        caller,
        host="h",
        profile="auto",  # type: ignore[arg-type]
        classification=None,
        limits=None,
        findings={},
    )
    assert "body" not in doc["attributes"]["request"]["http"]
    assert doc["parsed_body"] == {"model": "m", "user": "u"}
    assert doc["routeiq"]["tool_names"] == ["lookup"] and doc["routeiq"]["message_count"] == 1


def test_the_input_document_stays_encodable_at_the_parse_limit() -> None:
    """The deepest body the parser admits still encodes (orjson: 255 levels) and is read
    by regorus (128 levels), with or without the raw body."""
    nested: object = "x"
    for _ in range(62):  # the body object, messages[...] and these: 64 levels in all
        nested = [nested]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": nested}
    request, _ = _request(body, {})
    caller = identify({}, IdentitySpec(), None)
    for raw in (False, True):
        doc = build_input(
            request,
            caller,
            host="h",
            profile=None,  # type: ignore[arg-type]
            classification=None,
            limits=None,
            findings={},
            include_raw_body=raw,
        )
        assert orjson.loads(orjson.dumps(doc)) == doc
