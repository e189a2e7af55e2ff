"""``routeiq policy test`` / ``policy eval`` through the register() hook, as the CLI runs them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from extproc.policy.cli import register, render_explain
from extproc.policy.result import PolicyResult, parse_decision
from tests.policy.conftest import REPO, request_doc


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="routeiq")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def test_policy_test_passes_on_shipped(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert _run(["policy", "test"]) == 0
    out = capsys.readouterr().out
    assert "data.routeiq.test_dry_run_allows_and_reports: PASS" in out
    assert out.rstrip().endswith("PASS: 25/25")


def test_policy_test_reports_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "a.rego").write_text("package t\nimport rego.v1\nx := 1\n")
    (tmp_path / "p" / "a_test.rego").write_text(
        "package t\nimport rego.v1\ntest_ok if x == 1\ntest_bad if x == 2\n"
        "test_err if 1 / 0 == 3\n"
    )
    assert _run(["policy", "test", "--dir", str(tmp_path / "p")]) == 2
    out = capsys.readouterr().out
    assert "data.t.test_ok: PASS" in out and "data.t.test_bad: FAIL" in out
    assert "PASS: 1/3" in out and "FAIL: 2/3" in out


def test_policy_eval_prints_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    path = tmp_path / "input.json"
    path.write_text(json.dumps(request_doc("support", "gpt-4o")))
    assert _run(["policy", "eval", "--input", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"]["allowed"] is False
    assert out["result"]["rule_ids"] == ["team-max-tier", "team-model-allowlist"]
    assert _run(["policy", "eval", "--input", str(path), "--explain"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("policy: DENY 403 by embedded")
    assert "max_tier: eco" in text


def test_render_explain_dry_run_and_unavailable() -> None:
    dry = parse_decision({"allowed": False, "rule_ids": ["r1"], "message": "no"},
                         engine="opa", deny_status=403, dry_run=True)
    text = render_explain(dry)
    assert "ALLOW" in text and "dry run: would deny (r1): no" in text
    down = PolicyResult(allowed=True, engine="opa", engine_unavailable=True,
                        reason="policy engine unavailable: timeout")
    assert "engine unavailable" in render_explain(down)
