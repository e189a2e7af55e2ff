"""Identity sources in order (verified claims, declared trusted headers, else anonymous),
and budgets that an anonymous caller cannot escape by sending or rotating headers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from extproc.api.identity import IdentitySpec, identify
from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.errors import ConfigError
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome
from extproc.state import MemoryStateStore

CLIENT_CLAIMS = {"x-team": "finance", "x-user-id": "ceo", "authorization": "Bearer sk-abc"}
TRUSTED = IdentitySpec.model_validate({"trustedHeaders": {"team": "x-team", "user": "x-user-id"}})

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  backends:
    - {name: a, cluster: ca, models: [m1]}
  state:
    limits:
      - {name: per-team, key: team, requestsPerWindow: 1, windowSeconds: 3600}
"""


def request(headers: dict[str, str], user: str | None = None) -> ParsedRequest:
    body: dict[str, object] = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}
    if user is not None:
        body["user"] = user
    raw = json.dumps(body).encode()
    return parse_request(Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", headers, raw)


def snapshot_for(tmp_path: Path, identity: str = "") -> Snapshot:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG + identity)
    return build_snapshot(path, with_router=False)


def test_client_identity_headers_are_not_trusted_by_default() -> None:
    caller = identify(CLIENT_CLAIMS, IdentitySpec(), "body-user")
    assert (caller.team, caller.user, caller.source) == (None, None, "anonymous")
    assert caller.api_key_hash is not None  # the key is still told apart (hashed)


def test_declared_trusted_headers_name_the_caller() -> None:
    caller = identify(CLIENT_CLAIMS, TRUSTED, "body-user")
    assert (caller.team, caller.user, caller.source) == ("finance", "ceo", "headers")
    only_team = IdentitySpec.model_validate({"trustedHeaders": {"team": "x-mesh-team"}})
    caller = identify({**CLIENT_CLAIMS, "x-mesh-team": "ml"}, only_team, None)
    assert (caller.team, caller.user) == ("ml", None)  # x-user-id is not declared


def test_the_body_user_field_names_a_user_only_when_declared() -> None:
    fallback = IdentitySpec.model_validate({"bodyUser": "fallback"})
    caller = identify({}, fallback, "end-user-7")
    assert (caller.user, caller.source) == ("end-user-7", "body")
    assert identify({}, IdentitySpec(), "end-user-7").user is None


def test_the_old_header_fields_are_refused_with_the_way_forward() -> None:
    with pytest.raises(ValidationError, match=r"replaced by 'trustedHeaders\.team'"):
        IdentitySpec.model_validate({"teamHeader": "x-team"})


def test_old_header_fields_in_a_config_file_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trustedHeaders\.user"):
        snapshot_for(tmp_path, "  identity: {userHeader: x-user-id}\n")


async def test_rotating_an_untrusted_team_header_escapes_no_budget(tmp_path: Path) -> None:
    """Two requests claiming different teams are one anonymous caller: the second is over
    the shared bucket's one request per hour."""
    snapshot = snapshot_for(tmp_path)
    store = MemoryStateStore()
    try:
        first = await decide(request({"x-team": "team-1"}), snapshot, state=store)
        second = await decide(request({"x-team": "team-2"}), snapshot, state=store)
        assert first.outcome is Outcome.ROUTED
        assert second.error is not None and second.error.status == 429
        assert first.explain["caller"]["team"] is None
        assert first.explain["caller"]["source"] == "anonymous"
    finally:
        await store.aclose()


async def test_trusted_team_headers_get_their_own_buckets(tmp_path: Path) -> None:
    identity = "  identity: {trustedHeaders: {team: x-team}}\n"
    snapshot = snapshot_for(tmp_path, identity)
    store = MemoryStateStore()
    try:
        first = await decide(request({"x-team": "team-1"}), snapshot, state=store)
        second = await decide(request({"x-team": "team-2"}), snapshot, state=store)
        again = await decide(request({"x-team": "team-1"}), snapshot, state=store)
        assert first.outcome is Outcome.ROUTED and second.outcome is Outcome.ROUTED
        assert again.error is not None and again.error.status == 429
        anonymous = await decide(request({}), snapshot, state=store)
        assert anonymous.outcome is Outcome.ROUTED  # the shared bucket of callers without one
        assert (await decide(request({}), snapshot, state=store)).error is not None
    finally:
        await store.aclose()
