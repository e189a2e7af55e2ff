"""Fold decision-log lines into the report, one line at a time.

Only counters are kept per key (backend, tier, category, team, day, rule...), plus the
decision latencies as a float array (8 bytes each) for exact percentiles: a log of
100k decisions costs about a megabyte, not 100k dictionaries.

Spend comes from ``usage`` lines that carry ``cost_usd`` (older lines without it are
counted as ``unpriced``); a usage line also names its ``backend``, ``tier`` and
``team``, so no join with the decision line is needed.
"""

from __future__ import annotations

import bisect
import math
from array import array
from dataclasses import dataclass
from typing import Any

import orjson

NONE = "none"
# Upper bounds (ms) of the overhead histogram; the last bucket is everything above.
OVERHEAD_BUCKETS_MS: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250)
BUDGET_CODE = "rate_limit_exceeded"


@dataclass(slots=True)
class Money:
    """Spend of some responses: what they cost and what the reference would have."""

    responses: int = 0
    estimated: int = 0
    cost_usd: float = 0.0
    counterfactual_usd: float = 0.0

    def add(self, cost: float, counterfactual: float, estimated: bool) -> None:
        self.responses += 1
        self.estimated += estimated
        self.cost_usd += cost
        self.counterfactual_usd += counterfactual

    def doc(self) -> dict[str, Any]:
        return {
            "responses": self.responses,
            "estimated": self.estimated,
            "cost_usd": round(self.cost_usd, 6),
            "counterfactual_usd": round(self.counterfactual_usd, 6),
            "saved_usd": round(self.counterfactual_usd - self.cost_usd, 6),
        }


def _bump(counts: dict[str, int], key: Any) -> None:
    k = key if isinstance(key, str) and key else NONE
    counts[k] = counts.get(k, 0) + 1


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def histogram(ordered: list[float], bounds: tuple[float, ...]) -> list[dict[str, Any]]:
    """Counts per bucket ``(previous bound, bound]`` of an ascending list, plus ``> last``."""
    out: list[dict[str, Any]] = []
    below = 0
    for bound in bounds:
        upto = bisect.bisect_right(ordered, bound)
        out.append({"le": bound, "count": upto - below})
        below = upto
    out.append({"le": None, "count": len(ordered) - below})
    return out


def _sorted_counts(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _money_map(m: dict[str, Money], by_key: bool = False) -> dict[str, Any]:
    items = sorted(m.items()) if by_key else sorted(m.items(), key=lambda kv: -kv[1].cost_usd)
    return {k: v.doc() for k, v in items}


class ReportBuilder:
    """Feed lines with ``feed``; ``result()`` is the JSON-ready report."""

    def __init__(self) -> None:
        self.lines = 0
        self.bad_lines = 0
        self.first: str | None = None
        self.last: str | None = None
        self.outcomes: dict[str, int] = {}
        self.by_backend: dict[str, int] = {}
        self.by_tier: dict[str, int] = {}
        self.by_category: dict[str, int] = {}
        self.by_profile: dict[str, int] = {}
        self.denial_rules: dict[str, int] = {}
        self.denial_codes: dict[str, int] = {}
        self.budget_limits: dict[str, int] = {}
        self.budget_teams: dict[str, int] = {}
        self.budget_refusals = 0
        self.latency = array("d")
        self.total = Money()
        self.unpriced = 0
        self.spend_team: dict[str, Money] = {}
        self.spend_day: dict[str, Money] = {}
        self.spend_backend: dict[str, Money] = {}

    def feed(self, line: bytes) -> None:
        self.lines += 1
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.bad_lines += 1
            return
        if not isinstance(doc, dict):
            self.bad_lines += 1
            return
        ts = doc.get("time")
        if isinstance(ts, str):
            if self.first is None or ts < self.first:
                self.first = ts
            if self.last is None or ts > self.last:
                self.last = ts
        kind = doc.get("type")
        if kind == "decision":
            self._decision(doc)
        elif kind == "usage":
            self._usage(doc, ts if isinstance(ts, str) else "")
        else:
            self.bad_lines += 1

    def _decision(self, d: dict[str, Any]) -> None:
        outcome = d.get("outcome")
        _bump(self.outcomes, outcome)
        latency = d.get("latency_ms")
        if isinstance(latency, int | float):
            self.latency.append(float(latency))
        if outcome == "denied":
            self._denied(d)
            return
        _bump(self.by_backend, d.get("backend"))
        _bump(self.by_tier, d.get("tier"))
        _bump(self.by_category, d.get("category"))
        _bump(self.by_profile, d.get("profile") or "explicit")

    def _denied(self, d: dict[str, Any]) -> None:
        code = d.get("error_code")
        _bump(self.denial_codes, code)
        for rule in d.get("rule_ids") or ():
            _bump(self.denial_rules, rule)
        limits = d.get("budget_refused_by") or ()
        if not limits and code != BUDGET_CODE:
            return
        self.budget_refusals += 1
        for limit in limits or ("unknown",):
            _bump(self.budget_limits, limit)
        caller = d.get("caller")
        _bump(self.budget_teams, caller.get("team") if isinstance(caller, dict) else None)

    def _usage(self, u: dict[str, Any], ts: str) -> None:
        cost = u.get("cost_usd")
        if not isinstance(cost, int | float):
            self.unpriced += 1
            return
        counterfactual = u.get("counterfactual_usd")
        cf = float(counterfactual) if isinstance(counterfactual, int | float) else float(cost)
        estimated = u.get("estimated") is True
        self.total.add(cost, cf, estimated)
        for table, key in (
            (self.spend_team, u.get("team")),
            (self.spend_day, ts[:10]),
            (self.spend_backend, u.get("backend")),
        ):
            k = key if isinstance(key, str) and key else NONE
            money = table.get(k)
            if money is None:
                money = table[k] = Money()
            money.add(cost, cf, estimated)

    def result(self) -> dict[str, Any]:
        ordered = sorted(self.latency)
        return {
            "lines": self.lines,
            "bad_lines": self.bad_lines,
            "period": {"first": self.first, "last": self.last},
            "decisions": {
                "total": sum(self.outcomes.values()),
                "by_outcome": _sorted_counts(self.outcomes),
            },
            "routing": {
                "by_backend": _sorted_counts(self.by_backend),
                "by_tier": _sorted_counts(self.by_tier),
                "by_category": _sorted_counts(self.by_category),
                "by_profile": _sorted_counts(self.by_profile),
            },
            "spend": {
                **self.total.doc(),
                "unpriced_responses": self.unpriced,
                "by_team": _money_map(self.spend_team),
                "by_day": _money_map(self.spend_day, by_key=True),
                "by_backend": _money_map(self.spend_backend),
            },
            "denials": {
                "total": sum(self.denial_codes.values()),
                "by_rule": _sorted_counts(self.denial_rules),
                "by_code": _sorted_counts(self.denial_codes),
            },
            "budget_refusals": {
                "total": self.budget_refusals,
                "by_limit": _sorted_counts(self.budget_limits),
                "by_team": _sorted_counts(self.budget_teams),
            },
            "overhead_ms": {
                "count": len(ordered),
                "p50": percentile(ordered, 50),
                "p99": percentile(ordered, 99),
                "max": ordered[-1] if ordered else None,
                "mean": round(sum(ordered) / len(ordered), 3) if ordered else None,
                "histogram": histogram(ordered, OVERHEAD_BUCKETS_MS),
            },
        }
