"""``routeiq demo``: the why of each sample, and nothing left behind (Ctrl-C included)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.stack import REPO

pytestmark = pytest.mark.e2e


def _demo(tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "extproc.cli", "demo", "--repo", str(REPO), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp)},
    )


def _demo_dirs(tmp: Path) -> list[Path]:
    """What the demo left in its TMPDIR (onnxruntime's own ``.ses`` id file aside)."""
    return [p for p in tmp.iterdir() if p.name.startswith("routeiq-demo-")]


def _why(stdout: str, title: str) -> str:
    lines = stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith(title))
    follow = lines[at + 1].strip()
    assert follow.startswith("why: "), lines[at : at + 2]
    return follow


VERDICT = re.compile(
    r"why: profile auto: category coding; cost-quality "
    r"(?:need [\d.]+ >= premium bar [\d.]+|need [\d.]+ < eco bar [\d.]+"
    r"|eco bar [\d.]+ <= need [\d.]+ < premium bar [\d.]+): (\w+); needs tier (\w+); (.+)"
)


def _check_learned_verdict(why: str) -> None:
    """The demo config's ``auto`` is the learned cost-quality rule: the words name the need
    and the bar it cleared, the tier it needed, and what served it (premium for standard:
    the demo config has no standard backend). No signal rule fires on this prompt."""
    found = VERDICT.fullmatch(why)
    assert found is not None, why
    rule_tier, needed, served = found.groups()
    assert rule_tier == needed and needed in {"eco", "standard", "premium"}, why
    if needed == "standard":
        assert "no backend of this config has tier standard, so premium" in served, why
    else:
        assert served.startswith(f"-> {needed} (tier {needed}, model "), why


def test_demo_says_why_and_leaves_no_directory(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--once")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    confidential = _why(out, "policy: confidential")
    assert "detectors found payment_card=1" in confidential
    assert "confidential traffic (found payment_card) kept in-cluster" in confidential
    _check_learned_verdict(_why(out, "auto: coding"))
    assert "o3-2025-04-16" in _why(out, "profile reasoning")
    assert "team-model-allowlist" in _why(out, "policy: team allow-list")
    assert _demo_dirs(tmp_path) == []


def test_ctrl_c_stops_everything_and_removes_the_directory(tmp_path: Path) -> None:
    proc = _demo(tmp_path)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # until the demo waits for Ctrl-C
        seen.append(line)
        if "Ctrl-C stops everything" in line or time.monotonic() > deadline:
            break
    assert any("Ctrl-C" in ln for ln in seen), "".join(seen)
    (logs,) = _demo_dirs(tmp_path)  # the logs, while it runs
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert "stopped" in rest
    assert _demo_dirs(tmp_path) == [] and not logs.exists()
