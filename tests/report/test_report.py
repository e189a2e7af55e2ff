"""``routeiq report`` over a decision log written by the real Runtime and DecisionLog.

The log is made by deciding real requests (routed, refused by a policy rule, refused
by a budget) and pricing their usage, written through the rotating file sink (small
files, so it rotates) with one rotated file gzipped by hand, as an operator might.
Every figure of the report is checked against the log's own lines or hand-computed
prices.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.api.usage import Usage
from extproc.cli import main
from extproc.config.settings import Settings
from extproc.config.snapshot import build_snapshot
from extproc.decision_log import DecisionLog, RotatingFileSink
from extproc.report.aggregate import percentile
from extproc.report.reader import ordered
from extproc.runtime import Runtime
from extproc.state import build_state_store

CONFIG = Path(__file__).with_name("report.yaml")
USAGE = Usage(1000, 500, 1500)


def chat(model: str, team: str, **extra: Any) -> ParsedRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hello there"}], **extra}
    path = "/v1/chat/completions"
    headers = {"x-team": team}
    return parse_request(Endpoint.CHAT_COMPLETIONS, "POST", path, headers, orjson.dumps(body))


@pytest.fixture(scope="module")
def log_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    import asyncio

    directory = tmp_path_factory.mktemp("report")
    path = directory / "routeiq-decisions.jsonl"
    asyncio.run(_write_log(path))
    rotated = sorted(directory.iterdir())
    assert len(rotated) >= 3, "the log should have rotated"
    oldest = max(rotated, key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    gz = oldest.with_name(oldest.name + ".gz")
    gz.write_bytes(gzip.compress(oldest.read_bytes()))
    oldest.unlink()
    yield sorted(directory.iterdir())


async def _write_log(path: Path) -> None:
    settings = Settings(config_path=CONFIG, decision_log="off")
    snapshot = build_snapshot(CONFIG, with_router=False)
    log = DecisionLog(RotatingFileSink(path, 2048, 10))
    runtime = Runtime(settings=settings, snapshot=snapshot, decision_log=log,
                      state=build_state_store(settings))  # fmt: skip
    plan = [("gpt-4o-mini", "search"), ("gpt-4o", "search"), ("gpt-4o-mini", "search"),
            ("gpt-4o-mini", "search"),  # the 4th of team search: over its budget of 3
            ("gpt-4o-mini", "ads"), ("gpt-4o", "ads")]  # fmt: skip
    for model, team in plan:
        decision = await runtime.decide(chat(model, team))
        if decision.backend is not None:
            await runtime.record_usage(decision, USAGE)
    await runtime.decide(chat("gpt-4o", "ads", max_tokens=40_000))  # policy: token ceiling
    assert log.flush()
    await runtime.close()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["report", *args]) == 0
    out: str = capsys.readouterr().out
    return out


def raw_lines(files: list[Path]) -> list[dict[str, Any]]:
    docs = []
    for f in files:
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        docs += [json.loads(line) for line in data.splitlines()]
    return docs


def test_json_report_figures(log_files: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    report = json.loads(run(capsys, *map(str, log_files), "--format", "json"))
    assert report["bad_lines"] == 0
    assert report["decisions"]["total"] == 7
    assert report["decisions"]["by_outcome"] == {"routed": 5, "denied": 2}
    assert report["routing"]["by_backend"] == {"eco": 3, "premium": 2}
    assert report["routing"]["by_tier"] == {"eco": 3, "premium": 2}
    assert report["denials"]["by_rule"] == {"token-ceiling": 1}
    assert report["denials"]["by_code"] == {"policy_denied": 1, "rate_limit_exceeded": 1}
    assert report["budget_refusals"] == {
        "total": 1, "by_limit": {"report-team-requests": 1}, "by_team": {"search": 1},
    }  # fmt: skip
    # 1000 in / 500 out: eco 450 per million, premium 7500; explicit models, saved 0
    spend = report["spend"]
    assert spend["by_team"]["search"]["cost_usd"] == pytest.approx(2 * 0.00045 + 0.0075)
    assert spend["by_team"]["ads"]["cost_usd"] == pytest.approx(0.00045 + 0.0075)
    assert spend["cost_usd"] == pytest.approx(3 * 0.00045 + 2 * 0.0075)
    assert spend["saved_usd"] == pytest.approx(0.0)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert list(spend["by_day"]) == [today] and spend["by_day"][today]["responses"] == 5
    latencies = sorted(d["latency_ms"] for d in raw_lines(log_files) if d["type"] == "decision")
    overhead = report["overhead_ms"]
    assert (overhead["p50"], overhead["p99"]) == (
        percentile(latencies, 50),
        percentile(latencies, 99),
    )
    assert sum(b["count"] for b in overhead["histogram"]) == 7


def test_text_report_tables(log_files: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    text = run(capsys, *map(str, log_files))
    assert "Decisions: 7 (routed 5, denied 2)" in text
    for heading in ("Routing mix by backend", "Spend by team (USD)", "Spend by day (USD)",
                    "Denials by policy rule", "Budget refusals by limit"):  # fmt: skip
        assert heading in text
    assert "token-ceiling" in text and "report-team-requests" in text
    search_row = next(line for line in text.splitlines() if line.strip().startswith("search "))
    assert "0.008400" in search_row  # 2 x 0.00045 + 0.0075


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_is_self_contained(
    log_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "report.html"
    assert run(capsys, *map(str, log_files), "--html", str(page)) == ""  # only the file
    parser = _Tags()
    parser.feed(page.read_text())
    parser.close()
    assert parser.tags[0] == "html" and "script" not in parser.tags
    assert parser.urls == []  # no external asset of any kind
    assert parser.tags.count("svg") >= 8  # routing mixes, spend, denials, budget, overhead
    text = " ".join(parser.text)
    assert "RouteIQ report" in text and "token-ceiling" in text and "report-team-requests" in text


def test_rotated_files_oldest_first_and_bad_lines_counted(
    log_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [p.name for p in ordered(reversed(log_files))]
    assert names[-1] == "routeiq-decisions.jsonl" and names[0].endswith(".gz")
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"type":"decision","outcome":"routed","latency_ms":1}\nnot json\n[1]\n\n')
    report = json.loads(run(capsys, str(broken), "--format", "json"))
    assert (report["lines"], report["bad_lines"]) == (3, 2)
    assert report["decisions"]["total"] == 1


def test_missing_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert capsys.readouterr().err.startswith("routeiq: no such file:")
