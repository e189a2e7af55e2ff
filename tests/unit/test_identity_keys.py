"""Issued API keys name the caller; headers a client writes do not."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from extproc.api.api_keys import load_api_keys
from extproc.api.identity import IdentitySpec, identify
from extproc.api.openai import Endpoint, parse_request
from extproc.config.errors import ConfigError
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "keys:\n"
        f"  - {{sha256: {digest('sk-alpha')}, team: alpha, user: ann}}\n"
        f"  - {{sha256: {digest('sk-beta')}, team: beta}}\n"
    )
    return path


def test_a_listed_key_names_its_team_and_user(keys_file: Path) -> None:
    table = load_api_keys(keys_file)
    spec = IdentitySpec()
    caller = identify({"authorization": "Bearer sk-alpha"}, spec, None, None, table)
    assert (caller.team, caller.user, caller.source) == ("alpha", "ann", "api_key")
    assert caller.api_key_hash == digest("sk-alpha")[:16]
    other = identify({"x-api-key": "sk-beta"}, spec, None, None, table)
    assert (other.team, other.user, other.source) == ("beta", None, "api_key")


def test_an_unlisted_key_or_a_claimed_team_names_nobody(keys_file: Path) -> None:
    table = load_api_keys(keys_file)
    spec = IdentitySpec()
    forged = identify(
        {"authorization": "Bearer sk-guess", "x-team": "alpha"}, spec, "mallory", None, table
    )
    assert (forged.team, forged.user, forged.source) == (None, None, "anonymous")
    assert forged.api_key_hash == digest("sk-guess")[:16]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("keys:\n  - {sha256: nothex, team: a}\n", "keys.0.sha256"),
        ("keys: [{sha256: " + "a" * 64 + "}, {sha256: " + "a" * 64 + "}]\n", "listed twice"),
        ("keys: [[[[", "invalid YAML"),
    ],
)
def test_a_bad_keys_file_is_a_one_line_config_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_api_keys(path)
    assert "\n" not in str(info.value)


async def test_the_shipped_demo_config_identifies_demo_keys() -> None:
    repo = Path(__file__).resolve().parents[2]
    snapshot = build_snapshot(repo / "config" / "routeiq.yaml", with_router=False)
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})

    async def as_headers(headers: dict[str, str]) -> tuple[Outcome, str | None]:
        parsed = parse_request(
            Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", headers, body.encode()
        )
        d = await decide(parsed, snapshot)
        assert d.caller is not None
        return d.outcome, d.caller.team

    # support may not use gpt-4o (policies/data/teams.yaml): the key proves the team.
    assert await as_headers({"authorization": "Bearer sk-demo-support"}) == (
        Outcome.DENIED,
        "support",
    )
    # Claiming the team with a header proves nothing: anonymous, and the rule for
    # support does not apply to it.
    _, team = await as_headers({"x-team": "support"})
    assert team is None
    snapshot.close()
