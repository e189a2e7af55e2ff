"""Runtime.record_usage prices responses: metrics and decision-log lines, by hand.

The usage comes from the real response parsers (``usage_from_json`` for a buffered
body, ``StreamUsageParser`` for SSE, its estimate when the stream reports no usage),
the decisions from the real ``decide``; prices are in tests/cost/cost.yaml.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from extproc.api.usage import StreamUsageParser, usage_from_json
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot
from extproc.decision_log import DecisionLog, StreamSink
from extproc.runtime import Runtime
from extproc.telemetry import Telemetry
from tests.cost.conftest import COST_CONFIG, chat, cost_snapshot


class Rig:
    """A Runtime with real telemetry and a decision log into memory."""

    def __init__(self, snapshot: Snapshot) -> None:
        settings = Settings(config_path=COST_CONFIG, decision_log="off")
        self.out = io.BytesIO()
        self.log = DecisionLog(StreamSink(self.out), interval_s=0.01)
        self.telemetry = Telemetry.from_settings(settings)
        self.runtime = Runtime(
            settings=settings, snapshot=snapshot, telemetry=self.telemetry, decision_log=self.log
        )

    def samples(self, name: str) -> dict[tuple[str, str, str], float]:
        text = self.telemetry.prometheus_text().decode()
        return {
            (s.labels["backend"], s.labels["tier"], s.labels["team"]): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == name
        }

    def usage_lines(self) -> list[dict[str, Any]]:
        assert self.log.flush()
        docs = [orjson.loads(line) for line in self.out.getvalue().splitlines()]
        return [d for d in docs if d["type"] == "usage"]

    def close(self) -> None:
        self.log.close()
        self.telemetry.shutdown()


@pytest.fixture
def rig(snapshot: Snapshot) -> Iterator[Rig]:
    r = Rig(snapshot)
    yield r
    r.close()


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


def chunk(text: str) -> dict[str, Any]:
    delta = {"index": 0, "delta": {"content": text}}
    return {"object": "chat.completion.chunk", "choices": [delta]}


async def test_buffered_streamed_and_estimated_usage_priced(rig: Rig) -> None:
    runtime = rig.runtime
    # Buffered JSON on premium (gpt-4o: premium is the cheaper of its two servers).
    buffered = await runtime.decide(chat("gpt-4o", team="search"))
    assert buffered.backend == "premium" and buffered.accounting
    body = orjson.dumps({"object": "chat.completion", "usage": {
        "prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
        "prompt_tokens_details": {"cached_tokens": 400}}})  # fmt: skip
    usage = usage_from_json(body)
    assert usage is not None
    await runtime.record_usage(buffered, usage)

    # Streamed on eco, usage in the last chunk (include_usage).
    streamed = await runtime.decide(chat("gpt-4o-mini", team="ads", stream=True))
    parser = StreamUsageParser(strip_usage=streamed.strip_usage_chunk)
    usage_chunk = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 12,
                                            "total_tokens": 22}}  # fmt: skip
    parser.feed(sse(chunk("Hello"), chunk(" there"), usage_chunk))
    parser.finish()
    await runtime.record_usage(streamed, parser.result(10))

    # Streamed with no usage at all: the estimate is priced (profile premium).
    request = chat("premium", team="marketing", stream=True)
    estimated = await runtime.decide(request)
    silent = StreamUsageParser()
    text = "An answer of forty-four characters, exactly."
    silent.feed(sse(chunk(text[:20]), chunk(text[20:])))
    silent.finish()
    guess = silent.result(request.prompt_tokens)
    assert guess.estimated and guess.completion_tokens == math.ceil(len(text) / 4)
    await runtime.record_usage(estimated, guess)

    # By hand: premium 600 x 2.50 + 400 cached x 1.25 + 500 x 10.00 = 7000 per million;
    # its reference premium-b (no cached price) 1000 x 3.00 + 500 x 12.00 = 9000.
    # eco: 10 x 0.15 + 12 x 0.60 = 8.7 per million, only eco serves it: saved 0.
    p, c = request.prompt_tokens, guess.completion_tokens
    est_cost, est_ref = (p * 2.5 + c * 10) / 1e6, (p * 3.0 + c * 12) / 1e6
    cost = rig.samples("routeiq_cost_usd_total")
    assert cost == pytest.approx({
        ("premium", "premium", "search"): 0.007,
        ("eco", "eco", "ads"): 8.7e-6,
        ("premium", "premium", "other"): est_cost,  # 'marketing' is not in costAccounting.teams
    }, abs=1e-12)  # fmt: skip
    assert rig.samples("routeiq_cost_saved_usd_total") == pytest.approx({
        ("premium", "premium", "search"): 0.002,
        ("premium", "premium", "other"): est_ref - est_cost,
    }, abs=1e-12)  # fmt: skip
    assert rig.samples("routeiq_cost_overspent_usd_total") == {}

    lines = {u["id"]: u for u in rig.usage_lines()}
    assert lines[buffered.id]["cost_usd"] == pytest.approx(0.007, abs=1e-12)
    assert lines[buffered.id]["counterfactual_usd"] == pytest.approx(0.009, abs=1e-12)
    assert lines[buffered.id]["reference_backend"] == "premium-b"
    assert lines[buffered.id]["cached_tokens"] == 400 and lines[buffered.id]["team"] == "search"
    assert lines[streamed.id]["cost_usd"] == pytest.approx(8.7e-6, abs=1e-12)
    assert lines[streamed.id]["counterfactual_usd"] == lines[streamed.id]["cost_usd"]
    assert lines[estimated.id]["estimated"] is True
    assert lines[estimated.id]["cost_usd"] == pytest.approx(est_cost, abs=1e-12)
    assert lines[estimated.id]["team"] == "marketing"  # the log keeps the real team


async def test_cheaper_reference_counts_overspending(tmp_path: Path) -> None:
    rig = Rig(cost_snapshot(tmp_path, referenceBackend="eco", teams=["search"]))
    try:
        decision = await rig.runtime.decide(chat("gpt-4o", team="search"))
        usage = usage_from_json(b'{"usage":{"prompt_tokens":1000,"completion_tokens":500}}')
        assert usage is not None
        await rig.runtime.record_usage(decision, usage)
        # 7500 per million at premium against 450 at eco: 7050 overspent, nothing saved
        key = ("premium", "premium", "search")
        assert rig.samples("routeiq_cost_overspent_usd_total") == pytest.approx(
            {key: 0.00705}, abs=1e-12
        )
        assert rig.samples("routeiq_cost_saved_usd_total") == {}
        (line,) = rig.usage_lines()
        assert line["counterfactual_usd"] - line["cost_usd"] == pytest.approx(-0.00705, abs=1e-12)
    finally:
        rig.close()


async def test_refused_request_is_never_priced(rig: Rig) -> None:
    denied = await rig.runtime.decide(chat("no-such-model", team="search"))
    assert denied.backend is None
    usage = usage_from_json(b'{"usage":{"prompt_tokens":5,"completion_tokens":5}}')
    assert usage is not None
    await rig.runtime.record_usage(denied, usage)
    assert rig.samples("routeiq_cost_usd_total") == {}
    (line,) = rig.usage_lines()
    assert line["cost_usd"] is None and line["reference_backend"] is None
