"""The dashboard in a real headless Chromium, RouteIQ behind the real Envoy.

The page must load with no console error, show decisions sent through Envoy as they
happen (with their cost once the response's usage is read), fill its panels from the
metrics, and its explain playground must give the decision ``routeiq explain`` gives.
A screenshot of the run is saved next to the test files, or where DASHBOARD_SCREENSHOT
says (docs/images/dashboard.png is the one in docs/operations.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser import chromium, console_errors, wait_for
from tests.dashboard.conftest import DASHBOARD_CONFIG, Served

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
# Where the screenshot of the run goes: DASHBOARD_SCREENSHOT=docs/images/dashboard.png
# refreshes the picture in docs/operations.md; by default it stays with the test's files.
SCREENSHOT_ENV = "DASHBOARD_SCREENSHOT"


def body(
    model: str, text: str = "Summarise the quarterly report in one line.", **extra: Any
) -> bytes:
    doc = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return json.dumps(doc).encode()


def send(served: Served) -> list[tuple[str, str, str]]:
    """Traffic through Envoy: (decision id, outcome, what was sent) in order."""
    sent: list[tuple[str, str, str]] = []
    for name, payload, expect in (
        ("eco", body("gpt-4o-mini"), "routed"),
        ("premium", body("gpt-4o"), "routed"),
        ("eco-stream", body("gpt-4o-mini", stream=True), "routed"),
        ("too-large", body("gpt-4o", max_tokens=40_000), "denied"),  # over the token ceiling
        ("auto", body("auto", "Write a Python function that reverses a linked list."), "routed"),
        ("auto", body("auto", "Prove that the square root of 2 is irrational."), "routed"),
        ("auto", body("auto", "Translate 'good morning, see you soon' into French."), "routed"),
    ):
        status, headers, raw = served.envoy.post(CHAT, payload)
        assert (status == 200) == (expect == "routed"), (status, raw[:200])
        if name == "eco-stream":
            assert b"[DONE]" in raw
        sent.append((headers["x-routeiq-decision-id"], expect, name))
    return sent


def cell(driver: Any, decision_id: str, column: int) -> str:
    """Text of one cell of the live table's row for ``decision_id`` (1-based column)."""
    css = f'#live tr[data-id="{decision_id}"] td:nth-child({column})'
    text: str = driver.find_element("css selector", css).text
    return text


def row_ids(driver: Any) -> set[str]:
    rows = driver.find_elements("css selector", "#live tbody tr")
    return {r.get_attribute("data-id") for r in rows}


@pytest.fixture(scope="module")
def page(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium() as driver:
        driver.get(f"{served.admin}/dashboard")
        yield driver
        # The page after every test of the module (the picture in docs/operations.md).
        default = tmp_path_factory.getbasetemp() / "dashboard.png"
        target = Path(os.environ.get(SCREENSHOT_ENV) or default)
        target.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(target))


def test_page_loads_and_shows_live_decisions(page: Any, served: Served) -> None:
    assert page.title == "RouteIQ dashboard"
    wait_for(page, lambda d: d.find_element("id", "status").text == "live")
    sent = send(served)
    wait_for(page, lambda d: {i for i, _, _ in sent} <= row_ids(d))
    for decision_id, outcome, _ in sent:
        assert cell(page, decision_id, 2) == outcome
    # Usage arrives after the response: the cost cell fills in.
    routed = [i for i, outcome, _ in sent if outcome == "routed"]
    wait_for(page, lambda d: all(cell(d, i, 10).startswith("$") for i in routed))
    eco, premium, _, too_large = (i for i, _, _ in sent[:4])
    # demo backend usage: 10 in, 12 out. eco 10 x 0.15 + 12 x 0.60 = 8.7 per million;
    # premium 10 x 2.50 + 12 x 10.00 = 145 per million (6 decimals shown)
    assert (cell(page, eco, 5), cell(page, eco, 10)) == ("eco", "$0.000009")
    assert (cell(page, premium, 5), cell(page, premium, 10)) == ("premium", "$0.000145")
    assert "token" in cell(page, too_large, 8)  # the policy rule that refused it
    # Panels from the metrics (refreshed every 3 s).
    wait_for(page, lambda d: d.find_element("id", "c-decisions").text not in ("-", "0"), 10)
    wait_for(page, lambda d: d.find_element("id", "c-cost").text not in ("-", "$0.000000"), 10)
    charts = page.find_element("id", "mix-backend").text + page.find_element("id", "denials").text
    assert "eco" in charts and "premium" in charts and "token" in charts
    assert page.find_element("id", "version").text not in ("", "-", "…")
    assert "started" in page.find_element("id", "reloads").text
    assert "dashboard-requests" in page.find_element("id", "budgets").text
    assert console_errors(page) == []


def routeiq_explain(request: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "extproc.cli", "explain", "--config", str(DASHBOARD_CONFIG)],
        input=json.dumps(request).encode(), capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


@pytest.mark.parametrize(
    "request_body",
    [
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]},
        {"model": "gpt-4o", "max_tokens": 40000, "messages": [{"role": "user", "content": "x"}]},
        {"model": "auto", "messages": [{"role": "user", "content": "Write a Python quicksort."}]},
    ],
    ids=["explicit", "denied", "auto"],  # auto last: the playground the screenshot shows
)
def test_playground_gives_the_routeiq_explain_decision(
    page: Any, request_body: dict[str, Any]
) -> None:
    page.find_element("id", "ex-headers").clear()
    page.find_element("id", "ex-headers").send_keys("{}")
    box = page.find_element("id", "ex-body")
    box.clear()
    box.send_keys(json.dumps(request_body))
    page.execute_script("document.getElementById('ex-summary').removeAttribute('data-outcome')")
    page.find_element("id", "ex-run").click()
    wait_for(page, lambda d: d.find_element("id", "ex-summary").get_attribute("data-outcome"))
    shown = json.loads(page.find_element("id", "ex-json").text)["decision"]
    expected = routeiq_explain(request_body)
    keys = ("outcome", "backend", "upstream_model", "profile", "tier", "category", "rule_ids")
    assert {k: shown[k] for k in keys} == {k: expected[k] for k in keys}
    assert console_errors(page) == []


def test_dashboard_reads_never_change_state(served: Served) -> None:
    def summary() -> dict[str, Any]:
        with urllib.request.urlopen(f"{served.admin}/dashboard/api/summary", timeout=5) as r:
            doc: dict[str, Any] = json.loads(r.read())
            return doc

    before = summary()
    payload = json.dumps({"body": json.loads(body("gpt-4o"))}).encode()
    req = urllib.request.Request(f"{served.admin}/dashboard/api/explain", data=payload)
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.loads(r.read())["forwarded"] is False
    after = summary()
    assert after["decisions"] == before["decisions"]  # explain is not counted
    assert after["budgets"] == before["budgets"] or all(
        a["requests_remaining"] >= b["requests_remaining"]  # refilled, never charged
        for a, b in zip(after["budgets"], before["budgets"], strict=True)
    )
