"""The dashboard's data, in process: the live feed's events and the metrics summary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.api.usage import Usage
from extproc.config.settings import Settings
from extproc.config.snapshot import build_snapshot
from extproc.dashboard.feed import BACKLOG, LiveFeed
from extproc.dashboard.summary import summarize
from extproc.decision_log import DecisionLog
from extproc.runtime import Runtime
from extproc.telemetry import Telemetry
from tests.dashboard.conftest import DASHBOARD_CONFIG

SECRET = "sk-live-abcdefghijklmnopqrstuvwxyz123456"


def chat(model: str, text: str = f"my key is {SECRET}", **extra: Any) -> ParsedRequest:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    path = "/v1/chat/completions"
    return parse_request(Endpoint.CHAT_COMPLETIONS, "POST", path, {}, orjson.dumps(body))


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    settings = Settings(config_path=DASHBOARD_CONFIG, decision_log="off")
    snapshot = build_snapshot(DASHBOARD_CONFIG, with_router=False)
    telemetry = Telemetry.from_settings(settings)
    telemetry.set_config_version(snapshot.version)
    rt = Runtime(
        settings=settings,
        snapshot=snapshot,
        telemetry=telemetry,
        decision_log=DecisionLog(None),  # sink off: the ring still feeds the dashboard
    )
    yield rt
    await rt.close()


def events(chunk: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in chunk.split(b"\n\n"):
        lines = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
        if b"event" in lines:
            out.append((lines[b"event"].decode(), orjson.loads(lines[b"data"])))
    return out


async def test_feed_sends_redacted_lines_and_samples_under_load(runtime: Runtime) -> None:
    assert runtime.decision_log is not None
    for _ in range(BACKLOG + 5):
        await runtime.decide(chat("gpt-4o-mini"))
    feed = LiveFeed(runtime.decision_log, poll_s=0.01, per_tick=50, heartbeat_s=0.05)
    stream = feed.events()
    assert await anext(stream) == b": connected\n\n"
    first = await anext(stream)
    backlog = events(first)
    assert len(backlog) == BACKLOG and {e for e, _ in backlog} == {"decision"}
    assert all(doc["prompt"] == "[redacted]" for _, doc in backlog)
    assert SECRET.encode() not in first
    for _ in range(70):
        await runtime.decide(chat("gpt-4o-mini"))
    sampled = events(await anext(stream))
    assert sampled[0] == ("info", {"message": "20 lines skipped (sampling)"})
    assert len(sampled) == 51
    assert await anext(stream) == b": ping\n\n"  # quiet: heartbeat
    assert feed.streams == 1
    await stream.aclose()
    assert feed.streams == 0


async def test_summary_panels_from_the_metrics(runtime: Runtime) -> None:
    models = ("gpt-4o-mini", "gpt-4o", "gpt-4o-mini")
    routed = [await runtime.decide(chat(m, "hello")) for m in models]
    await runtime.decide(chat("gpt-4o", "hello", max_tokens=40_000))  # over the token ceiling
    for decision in routed:
        await runtime.record_usage(decision, Usage(1000, 500, 1500))
    assert runtime.telemetry is not None
    doc = summarize(runtime.telemetry.prometheus_text())
    assert doc["decisions"]["total"] == 4
    assert doc["decisions"]["by_outcome"] == {"routed": 3, "denied": 1}
    assert doc["decisions"]["by_backend"] == {"eco": 2, "premium": 1}
    assert doc["denials"]["by_rule"] == {"token-ceiling": 1}
    # eco 2 x 450 per million, premium 7500; explicit models: nothing else serves them
    cost = doc["cost"]
    assert cost["by_backend"]["eco"]["cost_usd"] == pytest.approx(0.0009)
    assert cost["by_backend"]["premium"]["cost_usd"] == pytest.approx(0.0075)
    assert cost["saved_usd"] == pytest.approx(0.0)
    assert cost["counterfactual_usd"] == pytest.approx(cost["cost_usd"])
    assert sum(b["count"] for b in doc["overhead"]["buckets"]) == 4
    assert doc["config_versions"] == {runtime.snapshot.version: 1}
