"""The operator commands: config validate (with Envoy routes) and explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "routeiq.yaml"
ENVOY = REPO / "envoy" / "routeiq-fail-closed.yaml"


def routeiq(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_config_validate_ok_with_envoy_routes() -> None:
    out = routeiq("config", "validate", str(CONFIG), "--envoy", str(ENVOY))
    assert out.returncode == 0, out.stderr
    assert "OK" in out.stdout and "policy embedded" in out.stdout


def test_config_validate_reports_a_cluster_envoy_does_not_route(tmp_path: Path) -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    doc["spec"]["backends"][0]["cluster"] = "nowhere"
    doc["spec"]["policy"]["modules"] = [str(REPO / "policies")]
    doc["spec"]["policy"]["data"] = [str(REPO / "policies" / "data")]
    bad = tmp_path / "c.yaml"
    bad.write_text(yaml.safe_dump(doc))
    out = routeiq("config", "validate", str(bad), "--envoy", str(ENVOY))
    assert out.returncode == 1
    assert "backend 'eco': no route matches x-routeiq-cluster: nowhere" in out.stderr


def test_config_validate_names_the_bad_field(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text(CONFIG.read_text().replace("tier: eco", "tier: cheapest", 1))
    out = routeiq("config", "validate", str(bad))
    assert out.returncode == 1
    assert "spec.backends.0.tier" in out.stderr


def test_explain_prints_policy_and_classification() -> None:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hey, how are you?"}]}
    out = routeiq(
        "explain",
        "--config",
        str(CONFIG),
        "--header",
        "x-team: finance",
        stdin=json.dumps(body).encode(),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["backend"] == "local"  # finance is limited to the local backend by policy
    assert doc["explain"]["policy"]["constraints"]["allowed_backends"] == ["local"]
    assert doc["explain"]["classification"]["category"] == "chat"
