"""The README's first command: the demo sends its samples through a real stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.fixtures.stack import REPO

pytestmark = pytest.mark.e2e


def test_demo_once_routes_every_sample() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "extproc.cli", "demo", "--once", "--repo", str(REPO)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {ln.strip().split("  ")[0]: ln for ln in out.stdout.splitlines() if "  " in ln}
    assert "-> eco (model sent upstream: gpt-4o-mini)" in lines["explicit model"]
    assert "-> premium (model sent upstream: gpt-4o)" in lines["alias, model rewritten"]
    assert "meta-llama/Llama-3.1-8B-Instruct" in lines["upstream model name"]
    assert "-> eco" in lines["spoofed route header"]
    assert "403  refused: policy_denied" in lines["policy: team allow-list"]
    assert "-> local" in lines["policy: confidential"]  # kept in-cluster
    assert "category=chat" in lines["auto: chit-chat"]
    assert "category=coding" in lines["auto: coding"]
    assert all("200" in lines[f"budget: request {i} of 4"] for i in (1, 2, 3))
    assert "429  refused: rate_limit_exceeded" in lines["budget: request 4 of 4"]
    assert "404  refused: model_not_found" in lines["unknown model"]
    assert "400  refused: invalid_json" in lines["malformed JSON"]
