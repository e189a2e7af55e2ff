"""Decision log lines: content, redaction, secrets, rotation, drops."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson

from extproc.api.usage import Usage
from extproc.decision_log import DecisionLog, RotatingFileSink, StreamSink
from extproc.runtime import Runtime
from tests.ops.conftest import chat, make_settings

SECRET = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"
HEADERS = {
    "authorization": f"Bearer {SECRET}",
    "x-api-key": "another-secret-value",
    "x-request-id": "req-42",
    "x-team": "search",
    "cookie": "session=very-secret-cookie",
}


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_decision_line_has_the_documented_fields(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog.from_settings(make_settings(decision_log="file", decision_log_path=path))
    request = chat("auto", "Please summarise this report for me.", HEADERS)
    decision = await runtime.decide(request)
    log.log_decision(decision, request, 0.00123)
    log.log_usage(decision.id, Usage(10, 20, 30, cached_tokens=4))
    assert log.flush()
    log.close()
    entry, usage = lines(path)
    assert entry["type"] == "decision"
    assert entry["id"] == decision.id
    assert entry["request_id"] == "req-42"
    assert decision.caller is not None
    assert entry["caller"] == decision.caller.as_dict()
    assert len(entry["caller"]["api_key_hash"]) == 16
    assert entry["requested_model"] == "auto"
    assert entry["model"] == decision.upstream_model
    assert entry["backend"] == decision.backend
    assert entry["profile"] == "auto"
    assert entry["category"] == decision.category and entry["tier"] == decision.tier
    assert isinstance(entry["score"], float)
    assert entry["reasons"] == list(decision.reasons)
    assert entry["config_version"] == runtime.snapshot.version
    assert entry["latency_ms"] == 1.23
    assert entry["outcome"] == "routed" and entry["error_code"] is None
    assert entry["policy"]["engine"] == "embedded"
    assert entry["time"].endswith("Z")
    assert entry["prompt"] == "[redacted]"
    assert usage == {
        "type": "usage", "time": usage["time"], "id": decision.id, "input_tokens": 10,
        "output_tokens": 20, "cached_tokens": 4, "reasoning_tokens": 0, "estimated": False,
        # not priced (no CostRecord given): the cost keys are present and null
        "backend": None, "tier": None, "team": None, "cost_usd": None,
        "counterfactual_usd": None, "reference_backend": None,
    }  # fmt: skip
    raw = path.read_text()
    for secret in (SECRET, "another-secret-value", "very-secret-cookie", "Please summarise"):
        assert secret not in raw


async def test_prompts_logged_only_when_opted_in_and_credentials_masked(
    runtime: Runtime,
) -> None:
    out = io.BytesIO()
    log = DecisionLog(StreamSink(out), log_prompts=True, prompt_chars=80)
    text = f"My key is {SECRET}, why does it fail? " + "x" * 200
    request = chat("gpt-4o", text, HEADERS)
    log.log_decision(await runtime.decide(request), request, 0.001)
    log.close()
    (line,) = out.getvalue().splitlines()
    entry = orjson.loads(line)
    assert entry["prompt"].startswith("My key is [redacted], why does it fail?")
    assert len(entry["prompt"]) <= 80
    assert SECRET not in out.getvalue().decode()


async def test_denied_decision_line(runtime: Runtime) -> None:
    out = io.BytesIO()
    log = DecisionLog(StreamSink(out))
    request = chat("nope", headers=HEADERS)
    log.log_decision(await runtime.decide(request), request, 0.0001)
    log.close()
    entry = orjson.loads(out.getvalue())
    assert entry["outcome"] == "denied"
    assert entry["status"] == 404 and entry["error_code"] == "model_not_found"
    assert entry["backend"] is None


async def test_rotation_keeps_the_configured_backups(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "rot.jsonl"
    log = DecisionLog(RotatingFileSink(path, max_bytes=2000, backups=2))
    request = chat("gpt-4o", headers=HEADERS)
    decision = await runtime.decide(request)
    for _ in range(40):
        log.log_decision(decision, request, 0.001)
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["rot.jsonl", "rot.jsonl.1", "rot.jsonl.2"]
    for f in tmp_path.iterdir():
        assert 0 < f.stat().st_size <= 2000
        assert all(e["id"] == decision.id for e in lines(f))  # no line cut in two


async def test_rotation_without_backups_truncates(tmp_path: Path, runtime: Runtime) -> None:
    path = tmp_path / "one.jsonl"
    log = DecisionLog(RotatingFileSink(path, max_bytes=1500, backups=0))
    request = chat("gpt-4o")
    decision = await runtime.decide(request)
    for _ in range(20):
        log.log_decision(decision, request, 0.001)
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["one.jsonl"]
    assert 0 < path.stat().st_size <= 1500


async def test_off_writes_nothing_and_full_queue_drops(runtime: Runtime) -> None:
    off = DecisionLog.from_settings(make_settings(decision_log="off"))
    assert not off.enabled
    request = chat("gpt-4o")
    decision = await runtime.decide(request)
    off.log_decision(decision, request, 0.001)
    assert off.flush() and off.dropped() == 0
    off.close()

    out = io.BytesIO()
    full = DecisionLog(StreamSink(out), queue_max=0)
    full.log_decision(decision, request, 0.001)
    full.log_usage(decision.id, {"prompt_tokens": 1})
    assert full.dropped() == 2
    full.close()
    assert out.getvalue() == b""


class CountingSink:
    """Records each batch the writer thread hands over."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def write(self, lines: list[bytes]) -> None:
        self.batches.append(len(lines))

    def close(self) -> None:
        return None


async def test_lines_wait_for_the_tick_or_a_flush_in_one_batch(runtime: Runtime) -> None:
    # The request path only appends: nothing is written (no thread woken) until the
    # writer's tick, here an hour away, or an explicit flush, which writes one batch.
    sink = CountingSink()
    log = DecisionLog(sink, interval_s=3600)
    request = chat("gpt-4o")
    decision = await runtime.decide(request)
    for _ in range(50):
        log.log_decision(decision, request, 0.001)
    assert sink.batches == []
    assert log.flush()
    assert sink.batches == [50]
    log.close()
    assert sink.batches == [50]


async def test_classified_line_carries_score_and_policy_summary(runtime: Runtime) -> None:
    out = io.BytesIO()
    log = DecisionLog(StreamSink(out))
    request = chat("auto", "Write a Python function that reverses a linked list.")
    decision = await runtime.decide(request)
    log.log_decision(decision, request, 0.002)
    log.close()
    entry = orjson.loads(out.getvalue())
    assert decision.classification is not None and decision.policy is not None
    assert entry["score"] == round(decision.classification.score, 4)
    q = decision.classification.quality  # the shipped config: the learned rule
    assert q is not None
    assert entry["quality"] == {
        "need": round(q.need, 4),
        "premium_bar": round(q.bars["premium"], 4),
        "eco_bar": round(q.bars["eco"], 4),
        "tier": q.tier,
        "calibration": "reference",
    }
    assert entry["shadow"] is None
    assert entry["policy"] == {
        "engine": decision.policy.engine,
        "allowed": True,
        "reason": decision.policy.reason,
        "rule_ids": list(decision.policy.rule_ids),
        "latency_us": round(decision.policy.latency_s * 1e6, 1),
    }
    assert entry["excluded"] == dict(decision.excluded)
