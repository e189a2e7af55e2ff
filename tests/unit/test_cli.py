"""The operator commands: config validate (with Envoy routes) and explain."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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
    doc["spec"]["identity"]["apiKeys"] = str(REPO / "config" / "api-keys.yaml")
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


def test_explain_prints_policy_and_classification(tmp_path: Path) -> None:
    """``--header`` gives the headers as the proxy would deliver them: the team header
    counts because this config declares it trusted (set by the mesh, not by clients)."""
    doc = yaml.safe_load(CONFIG.read_text())
    doc["spec"]["policy"]["modules"] = [str(REPO / "policies")]
    doc["spec"]["policy"]["data"] = [str(REPO / "policies" / "data")]
    doc["spec"]["identity"] = {"trustedHeaders": {"team": "x-team"}}
    config = tmp_path / "routeiq.yaml"
    config.write_text(yaml.safe_dump(doc))
    body = {"model": "auto", "messages": [{"role": "user", "content": "hey, how are you?"}]}
    out = routeiq(
        "explain",
        "--config",
        str(config),
        "--header",
        "x-team: finance",
        stdin=json.dumps(body).encode(),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["backend"] == "local"  # finance is limited to the local backend by policy
    assert doc["explain"]["policy"]["constraints"]["allowed_backends"] == ["local"]
    assert doc["explain"]["classification"]["category"] == "chat"


def test_config_validate_on_files_that_cannot_be_a_config(tmp_path: Path) -> None:
    """Deeply nested, binary, huge, alias bomb: one line on stderr, exit 1, no traceback."""
    from tests.unit.test_watcher import BAD_FILES

    for name in ("nested-flow", "binary", "huge", "alias-bomb"):
        bad = tmp_path / f"{name}.yaml"
        bad.write_bytes(BAD_FILES[name])
        out = routeiq("config", "validate", str(bad))
        assert out.returncode == 1, name
        assert "Traceback" not in out.stderr, name
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, out.stderr[-500:])
    envoy = tmp_path / "envoy.yaml"
    envoy.write_bytes(BAD_FILES["nested-flow"])
    out = routeiq("config", "validate", str(CONFIG), "--envoy", str(envoy))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "nests more than" in out.stderr


@pytest.mark.parametrize(
    ("config", "proxy"),
    [
        ("deploy/examples/litellm-in-front-of-providers.yaml", "deploy/istio/gateway-routes.yaml"),
        ("deploy/examples/vllm-small-provider-large.yaml", "deploy/envoy-gateway/httproutes.yaml"),
    ],
)
def test_config_validate_reads_kubernetes_route_files(config: str, proxy: str) -> None:
    """Istio and Gateway API files hold several YAML documents; their header matches count."""
    out = routeiq("config", "validate", config, "--envoy", proxy)
    assert out.returncode == 0, out.stderr
    assert ": OK (" in out.stdout


def test_config_validate_names_a_value_no_kubernetes_route_matches(tmp_path: Path) -> None:
    routes = list(yaml.safe_load_all((REPO / "deploy/istio/gateway-routes.yaml").read_text()))
    kept = [d for d in routes if d and d.get("kind") != "VirtualService"]
    for vs in (d for d in routes if d and d.get("kind") == "VirtualService"):
        vs["spec"]["http"] = [
            h for h in vs["spec"]["http"] if "provider_openai" not in json.dumps(h.get("match"))
        ]
        kept.append(vs)
    proxy = tmp_path / "routes.yaml"
    proxy.write_text(yaml.safe_dump_all(kept))
    config = REPO / "deploy/examples/litellm-in-front-of-providers.yaml"
    out = routeiq("config", "validate", str(config), "--envoy", str(proxy))
    assert out.returncode == 1
    assert "no route matches x-routeiq-cluster: provider_openai" in out.stderr
    assert "litellm" not in out.stderr  # that value still has its route


def test_config_validate_refuses_a_file_with_no_routes() -> None:
    out = routeiq(
        "config", "validate", str(CONFIG), "--envoy", "deploy/istio/envoyfilter-gateway.yaml"
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "is not an Envoy bootstrap, an Istio VirtualService or a Gateway API HTTPRoute" in (
        out.stderr
    )
