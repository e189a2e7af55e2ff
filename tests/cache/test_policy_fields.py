"""The policy side of the cache: ``cache`` in the decision document, in the input."""

from __future__ import annotations

import pytest

from extproc.api.identity import Caller
from extproc.policy import build_input, parse_decision
from extproc.policy.result import DecisionError
from tests.cache.conftest import chat


def test_decision_cache_field_is_a_boolean_or_absent() -> None:
    on = parse_decision({"allowed": True, "cache": True}, engine="e", deny_status=403)
    off = parse_decision({"allowed": True, "cache": False}, engine="e", deny_status=403)
    unset = parse_decision({"allowed": True}, engine="e", deny_status=403)
    assert (on.cache, off.cache, unset.cache) == (True, False, None)
    assert off.explain()["constraints"]["cache"] is False
    assert "cache" not in unset.explain()["constraints"]
    with pytest.raises(DecisionError, match="'cache' must be a boolean"):
        parse_decision({"allowed": True, "cache": "off"}, engine="e", deny_status=403)


def test_input_document_carries_the_cache_view() -> None:
    request = chat(headers={"cache-control": "no-store"})
    doc = build_input(
        request,
        Caller("support", None, None),
        host="h",
        profile=None,
        classification=None,
        limits=None,
        findings={},
    )
    assert doc["routeiq"]["cache"] == {"bypass": "no-store", "cache_control": "no-store"}
