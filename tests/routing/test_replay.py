"""``routeiq replay`` on decision logs written by the real decision path and decision log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.decision_log import DecisionLog, RotatingFileSink
from tests.fixtures.configs import category_rule_config

from .conftest import REPO, body_request
from .test_cli import knob_config, one_error_line, run

PROMPTS = [
    "Write a Python function that reverses a string.",
    "hello there!",
    "Translate 'thank you' into Japanese.",
    "Summarise this: the weekly sync moves to Friday at 10.",
]
USAGE = {"prompt_tokens": 12, "completion_tokens": 40}


def write_log(path: Path, prompts: list[str], *, log_prompts: bool, usage: bool) -> None:
    """Decide each prompt under the shipped demo config and log it as the server does."""
    snapshot = build_snapshot(REPO / "config" / "routeiq.yaml")
    log = DecisionLog(RotatingFileSink(path, 10**7, 0), log_prompts=log_prompts)

    async def go() -> None:
        for prompt in prompts:
            request = body_request(
                {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
            )
            decision = await decide(request, snapshot, state=None)
            log.log_decision(decision, request, 0.001)
            if usage:
                log.log_usage(decision.id, USAGE)

    try:
        asyncio.run(go())
        assert log.flush()
    finally:
        log.close()
        snapshot.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("logs")
    with_prompts, redacted = root / "decisions.jsonl", root / "redacted.jsonl"
    write_log(with_prompts, PROMPTS, log_prompts=True, usage=True)
    write_log(redacted, PROMPTS[:2], log_prompts=False, usage=False)
    return with_prompts, redacted


def backends_before(path: Path) -> list[str]:
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    return [x["backend"] for x in lines if x["type"] == "decision"]


# Prices of the e2e config used as the new one (USD per million tokens).
PRICE = {"eco": (0.15, 0.60), "premium": (2.50, 10.00), "litellm": (0.0, 0.0), "local": (0, 0)}


def cost(backend: str, prompt_tokens: int, output_tokens: int) -> float:
    inp, out = PRICE[backend]
    return (prompt_tokens * inp + output_tokens * out) / 1e6


def test_replay_everything_to_premium(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], logs: tuple[Path, Path]
) -> None:
    """Two logs; the redacted one's decisions are counted and skipped. The new config's
    knob at 100% sends every auto request to premium; the expected cost uses the logged
    usage (12 prompt, 40 completion tokens) and the new config's prices on both sides."""
    with_prompts, redacted = logs
    before = backends_before(with_prompts)
    assert (
        run(
            "replay",
            "--log",
            str(with_prompts),
            "--log",
            str(redacted),
            "--config",
            str(knob_config(tmp_path)),
            "--premium-share",
            "1",
            "--json",
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["replayed"] == 4 and doc["skipped_without_prompt"] == 2
    assert doc["usage_lines"] == 4 and doc["log_lines"] == 4 + 4 + 2
    assert doc["backends"]["after"] == {"premium": 4}
    assert doc["tiers"]["after"] == {"premium": 4}
    assert sum(doc["backends"]["before"].values()) == 4
    moved = {f"{b} -> premium": before.count(b) for b in set(before) if b != "premium"}
    assert doc["moved"] == moved
    assert doc["unchanged"] == before.count("premium")
    expected_before = sum(cost(b, 12, 40) for b in before)
    assert doc["expected_cost"]["before"] == pytest.approx(expected_before)
    assert doc["expected_cost"]["after"] == pytest.approx(4 * cost("premium", 12, 40))


def test_replay_text_report_and_default_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without usage lines nor max_tokens, the expected output is --default-output-tokens;
    at 0% premium nothing of this traffic needs premium under the new config."""
    log = tmp_path / "d.jsonl"
    write_log(log, PROMPTS[1:3], log_prompts=True, usage=False)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    tokens = [x["prompt_tokens_estimate"] for x in lines]
    assert (
        run(
            "replay",
            "--log",
            str(log),
            "--config",
            str(knob_config(tmp_path)),
            "--premium-share",
            "0",
            "--default-output-tokens",
            "100",
            "--json",
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert "premium" not in doc["backends"]["after"]
    assert doc["expected_cost"]["before"] == pytest.approx(
        sum(cost(x["backend"], t, 100) for x, t in zip(lines, tokens, strict=True))
    )
    assert run("replay", "--log", str(log), "--config", str(REPO / "config" / "routeiq.yaml")) == 0
    text = capsys.readouterr().out
    assert text.startswith("replayed 2 decisions (2 log lines: 0 usage, 0 decisions without")
    assert "moved: 0 of 2" in text and "expected cost: before $" in text


def test_replay_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], logs: tuple[Path, Path]
) -> None:
    config = str(REPO / "config" / "routeiq.yaml")
    assert run("replay", "--log", str(logs[1]), "--config", config) == 1
    assert "no logged decision carries a prompt (2 without one)" in one_error_line(capsys)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(logs[0].read_text().splitlines()[0] + "\n{truncated\n")
    assert run("replay", "--log", str(bad), "--config", config) == 1
    assert one_error_line(capsys).endswith("bad.jsonl:2: not a JSON line")
    assert run("replay", "--log", str(tmp_path / "none.jsonl"), "--config", config) == 1
    assert "cannot read" in one_error_line(capsys)
    off = str(category_rule_config(tmp_path / "category-rule.yaml"))
    assert run("replay", "--log", str(logs[0]), "--config", off, "--premium-share", "0.5") == 2
    assert "the cost-quality rule is off" in one_error_line(capsys)


def test_replay_moves_the_shipped_knob(
    capsys: pytest.CaptureFixture[str], logs: tuple[Path, Path]
) -> None:
    """The shipped config has the knob: at 100% every auto request but small talk (kept on
    eco by the default ceiling ``chat: eco``) needs premium."""
    config = str(REPO / "config" / "routeiq.yaml")
    argv = ["--log", str(logs[0]), "--config", config, "--premium-share", "1", "--json"]
    assert run("replay", *argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["replayed"] == 4
    assert doc["tiers"]["after"] == {"premium": 3, "eco": 1}
