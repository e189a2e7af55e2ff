"""The report as plain-text tables (the default output of ``routeiq report``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}" if abs(value) < 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A titled table: first column left-aligned, the others right-aligned."""
    cells = [list(headers), *([_fmt(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = [title]
    for r in cells:
        parts = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
        ]
        out.append("  " + "  ".join(parts).rstrip())
    if not rows:
        out.append("  (none)")
    return "\n".join(out)


def _share(counts: Mapping[str, int], title: str) -> str:
    total = sum(counts.values()) or 1
    rows = [(k, n, f"{100 * n / total:.1f}%") for k, n in counts.items()]
    return table(title, (title.split()[-1], "decisions", "share"), rows)


def _money(title: str, key: str, items: Mapping[str, Mapping[str, Any]]) -> str:
    rows = [
        (k, m["responses"], m["estimated"], m["cost_usd"], m["counterfactual_usd"], m["saved_usd"])
        for k, m in items.items()
    ]
    heads = (key, "responses", "estimated", "cost_usd", "counterfactual", "saved_usd")
    return table(title, heads, rows)


def render_text(report: Mapping[str, Any], files: Sequence[str]) -> str:
    d, o, s = report["decisions"], report["overhead_ms"], report["spend"]
    period = report["period"]
    outcomes = ", ".join(f"{k} {v:,}" for k, v in d["by_outcome"].items())
    head = [
        f"RouteIQ report: {len(files)} file(s), {report['lines']:,} lines "
        f"({report['bad_lines']:,} unreadable), "
        f"{period['first'] or '-'} .. {period['last'] or '-'}",
        f"Decisions: {d['total']:,} ({outcomes or 'none'})",
        f"Overhead (decision latency_ms): p50 {_ms(o['p50'])}, p99 {_ms(o['p99'])}, "
        f"max {_ms(o['max'])}, mean {_ms(o['mean'])}",
        f"Spend: {_fmt(s['cost_usd'])} USD for {s['responses']:,} priced responses "
        f"({s['estimated']:,} from estimated usage, {s['unpriced_responses']:,} unpriced); "
        f"at the reference {_fmt(s['counterfactual_usd'])} USD; saved {_fmt(s['saved_usd'])} USD",
    ]
    r, den, bud = report["routing"], report["denials"], report["budget_refusals"]
    sections = [
        "\n".join(head),
        _share(r["by_backend"], "Routing mix by backend"),
        _share(r["by_tier"], "Routing mix by tier"),
        _share(r["by_category"], "Routing mix by category"),
        _money("Spend by team (USD)", "team", s["by_team"]),
        _money("Spend by day (USD)", "day", s["by_day"]),
        _money("Spend by backend (USD)", "backend", s["by_backend"]),
        table("Denials by policy rule", ("rule", "denials"), list(den["by_rule"].items())),
        table("Denials by error code", ("code", "denials"), list(den["by_code"].items())),
        table("Budget refusals by limit", ("limit", "refusals"), list(bud["by_limit"].items())),
        table("Budget refusals by team", ("team", "refusals"), list(bud["by_team"].items())),
    ]
    return "\n\n".join(sections) + "\n"
