"""The example RoutingConfig files validate, and the files they reference exist where
the pod would see them (deploy/examples/policies mirrors <mountPath>/policies)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from extproc.config.schema import RoutingConfig
from extproc.config.snapshot import build_snapshot
from tests.deploy.harness import EXAMPLES, REPO

FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_the_three_set_ups_are_there() -> None:
    assert {f.name for f in FILES} == {
        "litellm-in-front-of-providers.yaml",
        "vllm-small-provider-large.yaml",
        "per-team-budgets.yaml",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_validates(path: Path) -> None:
    config = RoutingConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.metadata.name == path.stem
    for rel in (*config.spec.policy.modules, *config.spec.policy.data):
        assert (path.parent / rel).exists(), rel


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_builds_a_snapshot(path: Path) -> None:
    """The server's own loader: backends, aliases, default backend, config version."""
    snapshot = build_snapshot(path, with_policy=False)
    assert snapshot.default_backend.name == snapshot.config.spec.default_backend
    for alias in snapshot.config.spec.aliases:
        assert snapshot.models[alias]


def test_per_team_budgets_limit_by_team() -> None:
    config = RoutingConfig.model_validate(
        yaml.safe_load((EXAMPLES / "per-team-budgets.yaml").read_text())
    )
    limits = {limit.name: limit for limit in config.spec.state.limits}
    assert {limit.key for limit in limits.values()} == {"team", "user"}
    names = {b.name for b in config.spec.backends}
    for limit in limits.values():
        assert set(limit.match.backends) <= names
    # The backend names the team data pins to exist in this config.
    teams = yaml.safe_load((REPO / "policies/data/teams.yaml").read_text())["routeiq_data"]
    for team in teams["teams"].values():
        assert set(team.get("backends", [])) <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_example_builds_its_engines(path: Path) -> None:
    """What the server does at start and on reload: compile the Rego policies and load
    the routing artefacts (from models/, as the image's /app/models)."""
    snapshot = build_snapshot(path, with_policy=True, with_router=True)
    try:
        assert snapshot.router is not None
        assert (snapshot.policy is not None) == (snapshot.spec.policy.engine != "none")
    finally:
        snapshot.close()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_routeiq_config_validate_accepts_example(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "extproc.cli", "config", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
