"""The spec.state section: validation, compiled rules, and OpenAI's rate-limit headers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from extproc.api.identity import Caller
from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.state import (
    Bucket,
    BucketStatus,
    ConsumeResult,
    MemoryStateStore,
    StateSpec,
    compile_state_rules,
    estimated_tokens,
    format_reset,
    limits_document,
    rate_limit_error,
    ratelimit_headers,
)

SPEC: dict[str, Any] = {
    "limits": [
        {"name": "team-min", "key": "team", "requestsPerWindow": 10, "windowSeconds": 60},
        {
            "name": "key-tokens",
            "key": "api_key",
            "tokensPerWindow": 5000,
            "whenMissing": "skip",
            "match": {"models": ["gpt-4o"]},
        },
        {
            "name": "large-only",
            "key": "user",
            "requestsPerWindow": 2,
            "match": {"backends": ["large"]},
        },
    ],
    "affinity": {"enabled": True, "ttlSeconds": 600},
    "health": {"failureThreshold": 3, "failureStatuses": ["5xx", 429, "408"]},
}


def chat(messages: list[dict[str, str]], headers: dict[str, str] | None = None) -> ParsedRequest:
    body = orjson.dumps({"model": "auto", "messages": messages, "max_tokens": 100})
    return parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", headers or {}, body
    )


def test_spec_rejects_mistakes() -> None:
    with pytest.raises(ValidationError, match="requestsPerWindow and/or tokensPerWindow"):
        StateSpec.model_validate({"limits": [{"name": "x", "key": "team"}]})
    with pytest.raises(ValidationError, match="unique"):
        StateSpec.model_validate({"limits": [SPEC["limits"][0], SPEC["limits"][0]]})
    with pytest.raises(ValidationError):
        StateSpec.model_validate({"limits": [{"name": "x", "key": "org", "requestsPerWindow": 1}]})
    with pytest.raises(ValidationError, match="5xx"):
        StateSpec.model_validate({"health": {"failureStatuses": ["50x"]}})
    with pytest.raises(ValidationError):
        StateSpec.model_validate({"affinity": {"ttl": 5}})  # typo: extra keys refused


def test_buckets_follow_caller_model_and_backend() -> None:
    rules = compile_state_rules(StateSpec.model_validate(SPEC))
    team = Caller("ml", "ann", "k1")
    ids = [b.id for b in rules.buckets_for(team, "gpt-4o")]
    assert ids == ["team-min:team:ml", "key-tokens:api_key:k1"]
    assert [b.id for b in rules.buckets_for(team, "gpt-4o-mini", "large")] == [
        "team-min:team:ml",
        "large-only:user:ann",
    ]
    anonymous = Caller(None, None, None)
    # A missing attribute shares one bucket, unless the limit says skip.
    assert [b.id for b in rules.buckets_for(anonymous, "gpt-4o", "large")] == [
        "team-min:team-missing",
        "large-only:user-missing",
    ]
    odd = Caller("a very long team name with spaces " * 3, None, None)
    (bucket, *_) = rules.buckets_for(odd)
    assert bucket.id.startswith("team-min:team:#") and len(bucket.id) < 60
    assert bucket.window_ms == 60_000 and bucket.requests == 10 and bucket.tokens is None


def test_health_rule() -> None:
    rule = compile_state_rules(StateSpec.model_validate(SPEC)).health
    assert [rule.is_failure(s) for s in (0, 200, 404, 408, 429, 500, 503)] == [
        True,
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert rule.threshold == 3 and rule.cooldown_ms == 30_000


def test_session_key() -> None:
    rules = compile_state_rules(StateSpec.model_validate(SPEC))
    caller = Caller("ml", "ann", None)
    first = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    later = [*first, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "more"}]
    key = rules.session_key(chat(first), caller)
    assert key is not None and len(key) == 32
    assert rules.session_key(chat(later), caller) == key  # the conversation keeps its key
    assert rules.session_key(chat(first), Caller("other", "ann", None)) != key
    other = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "yo"}]
    assert rules.session_key(chat(other), caller) != key
    with_header = chat(first, {"x-session-id": "abc"})
    assert rules.session_key(with_header, caller) == rules.session_key(
        chat(other, {"x-session-id": "abc"}), caller
    )
    assert rules.session_key(with_header, caller) != key
    off = compile_state_rules(StateSpec())
    assert off.session_key(chat(first), caller) is None


def test_estimated_tokens() -> None:
    request = chat([{"role": "user", "content": "x" * 400}])
    assert estimated_tokens(request) == request.prompt_tokens + 100


def test_format_reset() -> None:
    assert [format_reset(s) for s in (0, 0.0201, 1, 1.5, 59.999, 360, 3725.2)] == [
        "0ms",
        "21ms",
        "1s",
        "1.5s",
        "59.999s",
        "6m0s",
        "1h2m5.2s",
    ]


async def test_headers_and_429_body() -> None:
    store = MemoryStateStore()
    minute = Bucket("rpm:team:t", "rpm", 2, None, 60_000)
    tokens = Bucket("tpm:team:t", "tpm", None, 1000, 60_000)
    ok = await store.consume([minute, tokens], 300)
    headers = dict(ratelimit_headers(ok.statuses))
    assert headers == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "700",
        "x-ratelimit-reset-tokens": "18s",
    }
    await store.consume([minute, tokens], 300)
    refused = await store.consume([minute, tokens], 300)
    err = rate_limit_error(refused, 300)
    assert err.status == 429 and err.type == "requests" and err.code == "rate_limit_exceeded"
    assert dict(err.headers)["retry-after"] == "30"
    body = orjson.loads(err.body())["error"]
    assert "Rate limit reached for limit 'rpm'" in body["message"]
    too_big = await store.consume([tokens], 5000)
    err = rate_limit_error(too_big, 5000)
    assert err.type == "tokens" and "retry-after" not in dict(err.headers)
    assert "Request too large" in err.message


def test_headers_pick_the_tightest_bucket() -> None:
    loose = Bucket("a", "a", 100, None, 1000)
    tight = Bucket("b", "b", 5, None, 1000)
    statuses = (BucketStatus(loose, 50, None, 0.5, 0.0), BucketStatus(tight, 3, None, 0.4, 0.0))
    headers = dict(ratelimit_headers(statuses))
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "3"
    assert ratelimit_headers(ConsumeResult(True, (), None, None).statuses) == ()


async def test_limits_document_for_policies() -> None:
    store = MemoryStateStore()
    bucket = Bucket("rpm:team:t", "rpm", 10, None, 60_000)
    await store.consume([bucket], 0)
    doc = limits_document(await store.limit_status([bucket]))
    assert doc == {
        "rpm": {
            "requests_limit": 10,
            "requests_remaining": 9,
            "tokens_limit": None,
            "tokens_remaining": None,
            "reset_requests_s": 6.0,
            "reset_tokens_s": 0.0,
            "window_s": 60.0,
        }
    }
