"""Decision documents into PolicyResult: booleans, OPA Envoy names, malformed documents."""

from __future__ import annotations

import orjson
import pytest

from extproc.policy.result import DecisionError, parse_decision, policy_config_error


def test_boolean_decisions() -> None:
    assert parse_decision(True, engine="e", deny_status=403).allowed
    denied = parse_decision(False, engine="e", deny_status=451)
    assert not denied.allowed and denied.http_status == 451
    assert denied.message == "The request was denied by policy."


def test_object_fields_and_opa_envoy_names() -> None:
    result = parse_decision(
        {
            "allow": False,
            "http_status": 429,
            "body": {"error": "slow down"},
            "headers": {"X-A": "1"},
            "response_headers_to_add": {"x-b": 2},
            "allowed_backends": ["b", "a"],
            "denied_backends": ["c"],
            "allowed_models": [],
            "force_model": "m",
            "profile": "eco",
            "max_tier": "eco",
            "reason": "quota",
            "rule_ids": ["r"],
            "require_in_cluster": True,
        },
        engine="opa",
        deny_status=403,
    )
    assert not result.allowed and result.http_status == 429
    assert result.body == '{"error":"slow down"}' and result.message == "quota"
    assert result.headers == (("x-a", "1"),) and result.response_headers == (("x-b", "2"),)
    assert result.allowed_backends == frozenset({"a", "b"})
    assert result.denied_backends == frozenset({"c"}) and result.allowed_models == frozenset()
    assert (result.force_model, result.profile, result.max_tier) == ("m", "eco", "eco")
    assert result.require_in_cluster and result.rule_ids == ("r",)
    assert result.api_error().headers == (("x-b", "2"),)


@pytest.mark.parametrize(
    "doc",
    [
        "yes",
        1,
        {"allowed": "true"},
        {"allowed": True, "rule_ids": "r"},
        {"allowed": True, "allowed_backends": "a"},
        {"allowed": False, "http_status": 99},
        {"allowed": True, "headers": ["x"]},
    ],
)
def test_malformed(doc: object) -> None:
    with pytest.raises(DecisionError):
        parse_decision(doc, engine="e", deny_status=403)


def test_custom_deny_body_replaces_the_error_body() -> None:
    """docs/policy.md: a decision's ``body`` replaces the whole error body."""
    doc = {
        "error": {
            "message": "Ask #platform for access.",
            "type": "team_policy",
            "code": "ask_platform",
            "param": None,
        }
    }
    result = parse_decision(
        {"allowed": False, "body": doc, "http_status": 451}, engine="e", deny_status=403
    )
    error = result.api_error()
    assert error.status == 451 and orjson.loads(error.body()) == doc
    text = parse_decision({"allowed": False, "body": "plain words"}, engine="e", deny_status=403)
    assert text.api_error().body() == b"plain words"
    plain = parse_decision({"allowed": False, "message": "no"}, engine="e", deny_status=403)
    assert orjson.loads(plain.api_error().body())["error"]["message"] == "no"


def test_a_policy_naming_an_unknown_model_is_a_500_naming_the_rule() -> None:
    error = policy_config_error("route-finance", "force_model '" + "x" * 5000 + "' is unknown")
    assert error.status == 500 and error.code == "policy_config_error"
    assert error.type == "server_error"
    message = orjson.loads(error.body())["error"]["message"]
    assert "route-finance" in message and len(message) < 400
    unnamed = policy_config_error("", "profile 'turbo' is unknown")
    assert "profile 'turbo' is unknown" in unnamed.message


def test_an_unencodable_header_or_body_value_is_a_malformed_decision() -> None:
    """A decision value nested past what JSON encoding allows is the engine's bad
    decision (failure mode), not an exception escaping parse_decision."""
    deep: object = "x"
    for _ in range(300):
        deep = [deep]
    for doc in ({"allowed": True, "headers": {"x-a": deep}}, {"allowed": False, "body": deep}):
        with pytest.raises(DecisionError, match="cannot be encoded"):
            parse_decision(doc, engine="e", deny_status=403)
