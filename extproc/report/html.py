"""The report as one self-contained HTML file: inline CSS and SVG, no script, no fetch.

A person can open it offline or attach it to a ticket; every value comes from the
JSON report (``aggregate.ReportBuilder.result``) and every string is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from extproc.report.svg import columns, hbars

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:20px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:2px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#f5f5f5}
svg.chart text{font:12px system-ui,sans-serif;fill:#222}svg .tick{font-size:10px}
.empty{color:#888}.note{color:#666;font-size:12px}
"""


def _usd(v: float) -> str:
    return f"${v:,.4f}" if abs(v) < 100 else f"${v:,.2f}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} ms"


def _card(label: str, value: str) -> str:
    return f'<div class="card">{escape(label)}<b>{escape(value)}</b></div>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="empty">(none)</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _counts(counts: Mapping[str, int], limit: int = 20) -> str:
    return hbars([(k, float(v)) for k, v in list(counts.items())[:limit]])


def _money_rows(items: Mapping[str, Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (k, m["responses"], m["estimated"], _usd(m["cost_usd"]),
         _usd(m["counterfactual_usd"]), _usd(m["saved_usd"]))
        for k, m in items.items()
    ]  # fmt: skip


def _spend(s: Mapping[str, Any]) -> str:
    days = list(s["by_day"])
    day_chart = columns(
        days,
        [
            ("spent", [s["by_day"][d]["cost_usd"] for d in days]),
            ("at the reference", [s["by_day"][d]["counterfactual_usd"] for d in days]),
        ],
        fmt=_usd,
    )
    team_items = [(k, float(m["cost_usd"])) for k, m in list(s["by_team"].items())[:20]]
    heads = ("key", "responses", "estimated", "cost", "at reference", "saved")
    return (
        "<h2>Spend vs counterfactual by day</h2>" + day_chart
        + "<h2>Spend by team</h2>" + hbars(team_items, fmt=_usd, color="#e08a2c")
        + _table(heads, _money_rows(s["by_team"]))
        + "<h2>Spend by day</h2>" + _table(heads, _money_rows(s["by_day"]))
        + "<h2>Spend by backend</h2>" + _table(heads, _money_rows(s["by_backend"]))
    )  # fmt: skip


def _overhead(o: Mapping[str, Any]) -> str:
    items = []
    prev = 0.0
    for b in o["histogram"]:
        label = f"{prev:g}-{b['le']:g} ms" if b["le"] is not None else f"> {prev:g} ms"
        items.append((label, float(b["count"])))
        prev = b["le"] if b["le"] is not None else prev
    return "<h2>Decision overhead (latency_ms)</h2>" + hbars(items, color="#7a5aa6")


def render_html(report: Mapping[str, Any], files: Sequence[str]) -> str:
    d, s, o = report["decisions"], report["spend"], report["overhead_ms"]
    r, den, bud = report["routing"], report["denials"], report["budget_refusals"]
    period = report["period"]
    cards = "".join([
        _card("decisions", f"{d['total']:,}"),
        _card("spent", _usd(s["cost_usd"])),
        _card("at the reference", _usd(s["counterfactual_usd"])),
        _card("saved", _usd(s["saved_usd"])),
        _card("denied", f"{den['total']:,}"),
        _card("budget refusals", f"{bud['total']:,}"),
        _card("overhead p50", _ms(o["p50"])),
        _card("overhead p99", _ms(o["p99"])),
    ])  # fmt: skip
    body = (
        f"<h1>RouteIQ report</h1><p class=\"note\">{escape(str(period['first']))} .. "
        f"{escape(str(period['last']))}; {report['lines']:,} lines from "
        f"{escape(', '.join(files))}; {s['estimated']:,} responses priced from estimated "
        f"usage, {s['unpriced_responses']:,} unpriced.</p>"
        f'<div class="cards">{cards}</div>'
        "<h2>Routing mix by backend</h2>" + _counts(r["by_backend"])
        + "<h2>Routing mix by tier</h2>" + _counts(r["by_tier"])
        + "<h2>Routing mix by category</h2>" + _counts(r["by_category"])
        + _spend(s)
        + "<h2>Denials by policy rule</h2>" + _counts(den["by_rule"])
        + "<h2>Denials by error code</h2>" + _counts(den["by_code"])
        + "<h2>Budget refusals by limit</h2>" + _counts(bud["by_limit"])
        + "<h2>Budget refusals by team</h2>" + _counts(bud["by_team"])
        + _overhead(o)
    )  # fmt: skip
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>RouteIQ report</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )
