"""Bypass rules and tenants: who and what may use the answer cache."""

from __future__ import annotations

import pytest

from extproc.api.identity import Caller
from extproc.api.openai import Endpoint
from extproc.cache.rules import cache_control, input_view, policy_bypass, request_bypass, tenant
from extproc.cache.spec import CacheSpec
from tests.cache.conftest import chat

SPEC = CacheSpec(enabled=True)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {}}}


@pytest.mark.parametrize(
    ("request_body", "reason"),
    [
        ({}, None),
        ({"tools": [TOOL]}, "tools"),
        ({"functions": [{"name": "f", "parameters": {}}]}, "tools"),
        ({"tool_choice": "none"}, "tools"),
        (
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "tool_calls": [{"id": "1", "type": "function"}]},
                    {"role": "user", "content": "and tomorrow?"},
                ]
            },
            "tools",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "data:,"}},
                        ],
                    }
                ]
            },
            "images",
        ),
        ({"modalities": ["text", "audio"]}, "audio"),
        ({"n": 2}, "n"),
        ({"n": 1}, None),
        ({"logprobs": True}, "logprobs"),
        ({"temperature": 0.7}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
    ],
)
def test_content_bypass_rules(request_body: dict[str, object], reason: str | None) -> None:
    assert request_bypass(chat(**request_body), SPEC) == reason


def test_temperature_rule_follows_the_operator() -> None:
    no_temperature = chat(temperature=None)
    assert request_bypass(no_temperature, SPEC) == "temperature"  # OpenAI's default is 1
    allowing = CacheSpec(enabled=True, max_temperature=1.0)
    assert request_bypass(no_temperature, allowing) is None
    assert request_bypass(chat(temperature=1.2), allowing) == "temperature"
    assert request_bypass(no_temperature, CacheSpec(default_temperature=0)) is None


def test_other_endpoints_bypass() -> None:
    embeddings = chat(endpoint=Endpoint.EMBEDDINGS, input="hello")
    assert request_bypass(embeddings, SPEC) == "endpoint"


def test_cache_control_opt_out() -> None:
    assert cache_control({"cache-control": "no-store"}) == "no-store"
    assert cache_control({"cache-control": "max-age=0, No-Store"}) == "no-store"
    assert cache_control({"cache-control": "no-cache"}) == "no-cache"
    assert cache_control({"cache-control": "max-age=60"}) is None
    assert cache_control({}) is None
    request = chat(headers={"cache-control": "no-store"})
    assert request_bypass(request, SPEC) == "no-store"
    assert request_bypass(chat(headers={"cache-control": "no-cache"}), SPEC) is None


def test_policy_turns_the_cache_off_or_on() -> None:
    assert policy_bypass(None, SPEC) is None
    assert policy_bypass(False, SPEC) == "policy"
    opt_in = CacheSpec(enabled=True, by_default=False)
    assert policy_bypass(None, opt_in) == "policy"
    assert policy_bypass(True, opt_in) is None


def test_tenant_is_a_trusted_identity() -> None:
    team = Caller("support", "ana", "k1", source="api_key")
    assert tenant(team, SPEC) == "team:support"
    assert tenant(team, CacheSpec(partition="user")) == "user:ana"
    assert tenant(Caller(None, None, "k1"), SPEC) == "key:k1"
    assert tenant(Caller("support", None, "k1"), CacheSpec(partition="user")) == "key:k1"
    assert tenant(Caller(None, None, None), SPEC) is None
    assert tenant(None, SPEC) is None
    assert tenant(Caller(None, None, None), CacheSpec(anonymous="shared")) == "anonymous"


def test_policy_input_view() -> None:
    assert input_view(chat()) == {"bypass": None, "cache_control": None}
    view = input_view(chat(tools=[TOOL], headers={"cache-control": "no-cache"}))
    assert view == {"bypass": "tools", "cache_control": "no-cache"}
