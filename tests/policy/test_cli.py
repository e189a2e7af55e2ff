"""``routeiq policy test | eval | input`` as the CLI runs them, with OPA's habits."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.policy.cli import register, render_explain
from extproc.policy.result import PolicyResult, parse_decision
from tests.policy.conftest import REPO, request_doc

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Refund 4111 1111 1111 1111"}]}
SUPPORT = "authorization: Bearer sk-demo-support"  # a demo key issued to team support


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="routeiq")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", "policy", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )


@pytest.fixture
def failing(tmp_path: Path) -> Path:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.rego").write_text("package t\nimport rego.v1\nx := 1\n")
    (tmp_path / "p" / "a_test.rego").write_text(
        "package t\nimport rego.v1\ntest_ok if x == 1\ntest_bad if x == 2\ntest_err if 1 / 0 == 3\n"
    )
    return tmp_path / "p"


@pytest.fixture
def body(tmp_path: Path) -> Path:
    path = tmp_path / "body.json"
    path.write_text(json.dumps(CHAT))
    return path


# -- policy test ---------------------------------------------------------------------------


def test_policy_test_quiet_when_all_pass(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert _run(["policy", "test", "policies"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines() == ["PASS: 26/26"]


def test_policy_test_verbose_lists_every_test(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert _run(["policy", "test", "-v"]) == 0
    out = capsys.readouterr().out
    assert "data.routeiq.test_dry_run_allows_and_reports: PASS" in out
    assert out.rstrip().endswith("PASS: 26/26")


def test_policy_test_reports_failures_only(
    failing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["policy", "test", str(failing)]) == 2
    out = capsys.readouterr().out
    assert "data.t.test_bad: FAIL" in out and "data.t.test_err: ERROR" in out
    assert "test_ok" not in out
    assert "PASS: 1/3" in out and "FAIL: 2/3" in out


@pytest.mark.parametrize("flag", ["--format", "-f", "-o"])
def test_policy_test_json(failing: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    assert (
        _run(
            ["policy", "test", str(failing / "a.rego"), str(failing / "a_test.rego"), flag, "json"]
        )
        == 2
    )
    doc = json.loads(capsys.readouterr().out)
    by_name = {t["name"]: t for t in doc}
    assert set(by_name) == {"test_ok", "test_bad", "test_err"}
    assert by_name["test_ok"]["package"] == "data.t" and "fail" not in by_name["test_ok"]
    assert by_name["test_bad"]["fail"] is True
    assert "error" in by_name["test_err"] and by_name["test_ok"]["duration"] >= 0
    assert by_name["test_ok"]["location"]["file"].endswith("a_test.rego")


def test_policy_test_dir_option_still_works(failing: Path) -> None:
    assert _run(["policy", "test", "--dir", str(failing)]) == 2


def test_policy_test_missing_path_is_one_line() -> None:
    out = _cli("test", "/nonexistent/policies")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "does not exist" in out.stderr


# -- policy eval ---------------------------------------------------------------------------


def test_policy_eval_prints_decision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(request_doc("support", "gpt-4o")))
    assert _run(["policy", "eval", "--input", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"]["allowed"] is False
    assert out["result"]["rule_ids"] == ["team-max-tier", "team-model-allowlist"]
    assert _run(["policy", "eval", "--input", str(path), "--format", "pretty"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("policy: DENY 403 by embedded")
    assert "max_tier: eco" in text


def test_an_openai_body_is_not_an_input_document(body: Path) -> None:
    out = _cli("eval", "--input", str(body))
    assert out.returncode == 2 and out.stdout == ""
    assert "is an OpenAI request body, not a policy input document" in out.stderr
    assert f"--request {body}" in out.stderr and out.stderr.count("\n") == 1


def test_eval_request_builds_the_input_the_server_would(body: Path) -> None:
    out = _cli("eval", "--request", str(body), "--header", SUPPORT)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["decision"]["allowed"] is False
    assert "confidential-in-cluster" in doc["result"]["rule_ids"]  # the detector's finding


def test_any_query_and_opa_fail_semantics(body: Path) -> None:
    """``--fail-defined`` on the violations set: exit 1 exactly when a rule denies (OPA's
    deny-set idiom); ``--fail`` is the opposite. The same on the decision's ``allowed``."""
    denied = ("eval", "--request", str(body), "--header", SUPPORT)
    anonymous = ("eval", "--request", str(body))
    for query in (
        "data.routeiq.violations[rule]",
        "x := data.routeiq.decision.allowed; x == false",
    ):
        out = _cli(*denied, "--query", query, "--fail-defined")
        assert out.returncode == 1, out.stderr
        assert json.loads(out.stdout)["result"]
        assert _cli(*denied, "--query", query, "--fail").returncode == 0
        passed = _cli(*anonymous, "--query", query, "--fail-defined")
        assert passed.returncode == 0 and json.loads(passed.stdout) == {}, passed.stderr
        assert _cli(*anonymous, "--query", query, "--fail").returncode == 1
    violations = _cli(*denied, "--query", "data.routeiq.violations")
    value = json.loads(violations.stdout)["result"][0]["expressions"][0]["value"]
    assert set(value) == {"team-model-allowlist"}


def test_bad_query_and_explain_are_one_line(body: Path) -> None:
    bad = _cli("eval", "--request", str(body), "--query", "data.routeiq.decision +")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "query 'data.routeiq.decision +'" in bad.stderr
    explain = _cli("eval", "--request", str(body), "--explain", "notes")
    assert explain.returncode == 2 and "--format pretty" in explain.stderr


# -- policy input --------------------------------------------------------------------------


def test_policy_input_prints_what_the_engine_sees(tmp_path: Path, body: Path) -> None:
    """The printed document is the one the engine evaluates: a policy that returns its
    own input (json.marshal into ``reason``) under the real decide() gives the same."""
    out = _cli("input", "--body", str(body), "--header", SUPPORT, "--header", "x-team: spoofed")
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["routeiq"]["caller"]["team"] == "support"  # from the issued key
    assert printed["routeiq"]["findings"] == {"payment_card": 1}
    assert printed["attributes"]["request"]["http"]["headers"]["authorization"].startswith(
        "sha256:"
    )
    echoed = _echoed_input(tmp_path, printed)
    assert echoed == printed


def _echoed_input(tmp_path: Path, printed: dict[str, Any]) -> Any:
    (tmp_path / "echo.rego").write_text(
        "package routeiq\nimport rego.v1\n"
        'decision := {"allowed": true, "reason": json.marshal(input)}\n'
    )
    config = (REPO / "config" / "routeiq.yaml").read_text()
    config = config.replace("modules: [../policies]", f"modules: [{tmp_path / 'echo.rego'}]")
    config = config.replace("data: [../policies/data]", "data: []")
    config = config.replace("apiKeys: api-keys.yaml", f"apiKeys: {REPO / 'config/api-keys.yaml'}")
    path = tmp_path / "echo.yaml"
    path.write_text(config)
    snapshot = build_snapshot(path)
    try:
        from extproc.api.openai import Endpoint, parse_request

        headers = {"authorization": "Bearer sk-demo-support", "x-team": "spoofed"}
        request = parse_request(
            Endpoint.CHAT_COMPLETIONS,
            "POST",
            "/v1/chat/completions",
            headers,
            json.dumps(CHAT).encode(),
        )
        import asyncio

        decision = asyncio.run(decide(request, snapshot))
    finally:
        snapshot.close()
    assert decision.policy is not None
    return json.loads(decision.policy.reason)


def test_policy_input_refused_before_policy(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}))
    out = _cli("input", "--body", str(path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "before any policy runs: 404 model_not_found" in out.stderr
    bad_header = _cli("input", "--body", str(path), "--header", "x-team=a")
    assert bad_header.returncode == 2 and "'name: value'" in bad_header.stderr


def test_render_explain_dry_run_and_unavailable() -> None:
    dry = parse_decision(
        {"allowed": False, "rule_ids": ["r1"], "message": "no"},
        engine="opa",
        deny_status=403,
        dry_run=True,
    )
    text = render_explain(dry)
    assert "ALLOW" in text and "dry run: would deny (r1): no" in text
    down = PolicyResult(
        allowed=True,
        engine="opa",
        engine_unavailable=True,
        reason="policy engine unavailable: timeout",
    )
    assert "engine unavailable" in render_explain(down)
