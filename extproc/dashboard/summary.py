"""The dashboard's aggregated panels, computed from Prometheus text.

Reading the same exposition ``/metrics`` serves means one code path for a single
process and for the supervisor of N workers (whose text is already the sum over
workers): routing mix, spend against the counterfactual, denials by rule, the decision
overhead histogram, config versions and reload counts all come from there. What only
a deciding process has (reload history, budget levels) is added by ``routes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

_DURATION = "routeiq_decision_duration_seconds_bucket"


def _bump(table: dict[str, float], key: str | None, value: float) -> None:
    k = key or "none"
    table[k] = table.get(k, 0.0) + value


def _money(table: dict[str, dict[str, float]], key: str, field: str, value: float) -> None:
    row = table.setdefault(key or "none", {"cost_usd": 0.0, "saved_usd": 0.0, "overspent_usd": 0.0})
    row[field] += value


class _Summary:
    """Accumulates the samples the panels need, one sample at a time."""

    def __init__(self) -> None:
        self.outcomes: dict[str, float] = {}
        self.backends: dict[str, float] = {}
        self.profiles: dict[str, float] = {}
        self.categories: dict[str, float] = {}
        self.reasons: dict[str, float] = {}
        self.rules: dict[str, float] = {}
        self.versions: dict[str, float] = {}
        self.reloads: dict[str, float] = {}
        self.workers: dict[str, float] = {}
        self.by_backend: dict[str, dict[str, float]] = {}
        self.by_team: dict[str, dict[str, float]] = {}
        self.by_tier: dict[str, dict[str, float]] = {}
        self.buckets: dict[float, float] = {}
        self.handlers: dict[str, Callable[[dict[str, str], float], None]] = {
            "routeiq_decisions_total": self._decision,
            "routeiq_classifications_total": lambda la, v: _bump(
                self.categories, la.get("category"), v
            ),
            "routeiq_denials_total": lambda la, v: _bump(self.reasons, la.get("reason"), v),
            "routeiq_rule_denials_total": self._rule,
            "routeiq_cost_usd_total": lambda la, v: self._cost(la, "cost_usd", v),
            "routeiq_cost_saved_usd_total": lambda la, v: self._cost(la, "saved_usd", v),
            "routeiq_cost_overspent_usd_total": lambda la, v: self._cost(la, "overspent_usd", v),
            "routeiq_config_info": lambda la, v: _bump(self.versions, la.get("version"), v),
            "routeiq_config_reloads_total": lambda la, v: _bump(self.reloads, la.get("result"), v),
            "routeiq_worker_up": lambda la, v: _bump(self.workers, la.get("worker"), v),
            _DURATION: self._duration,
        }

    def _decision(self, labels: dict[str, str], value: float) -> None:
        _bump(self.outcomes, labels.get("outcome"), value)
        _bump(self.profiles, labels.get("profile"), value)
        if labels.get("backend", "none") != "none":
            _bump(self.backends, labels.get("backend"), value)

    def _rule(self, labels: dict[str, str], value: float) -> None:
        kind, rule = labels.get("kind", "policy"), labels.get("rule", "unknown")
        _bump(self.rules, rule if kind == "policy" else f"{kind}: {rule}", value)

    def _cost(self, labels: dict[str, str], field: str, value: float) -> None:
        _money(self.by_backend, labels.get("backend", "none"), field, value)
        _money(self.by_team, labels.get("team", "none"), field, value)
        _money(self.by_tier, labels.get("tier", "none"), field, value)

    def _duration(self, labels: dict[str, str], value: float) -> None:
        le = float(labels.get("le", "inf"))
        self.buckets[le] = self.buckets.get(le, 0.0) + value

    def histogram(self) -> list[dict[str, Any]]:
        """Per-bucket counts (not cumulative) summed over outcomes; ``le`` None is +Inf."""
        out: list[dict[str, Any]] = []
        below = 0.0
        for le in sorted(self.buckets):
            cumulative = self.buckets[le]
            out.append({"le": None if le == float("inf") else le, "count": int(cumulative - below)})
            below = cumulative
        return out


def _money_doc(row: dict[str, float]) -> dict[str, float]:
    net = row["saved_usd"] - row["overspent_usd"]
    return {
        "cost_usd": round(row["cost_usd"], 9),
        "counterfactual_usd": round(row["cost_usd"] + net, 9),
        "saved_usd": round(net, 9),
    }


def _ints(table: dict[str, float]) -> dict[str, int]:
    return {k: int(v) for k, v in sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))}


def summarize(text: bytes | str) -> dict[str, Any]:
    """The dashboard's summary document from one Prometheus exposition."""
    s = _Summary()
    handlers = s.handlers
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for family in text_string_to_metric_families(raw):
        for sample in family.samples:
            handler = handlers.get(sample.name)
            if handler is not None:
                handler(sample.labels, sample.value)
    total = {"cost_usd": 0.0, "saved_usd": 0.0, "overspent_usd": 0.0}
    for row in s.by_backend.values():
        for k in total:
            total[k] += row[k]
    return {
        "decisions": {
            "total": int(sum(s.outcomes.values())),
            "by_outcome": _ints(s.outcomes),
            "by_backend": _ints(s.backends),
            "by_profile": _ints(s.profiles),
        },
        "categories": _ints(s.categories),
        "cost": {
            **_money_doc(total),
            "by_backend": {k: _money_doc(v) for k, v in sorted(s.by_backend.items())},
            "by_team": {k: _money_doc(v) for k, v in sorted(s.by_team.items())},
            "by_tier": {k: _money_doc(v) for k, v in sorted(s.by_tier.items())},
        },
        "denials": {"by_reason": _ints(s.reasons), "by_rule": _ints(s.rules)},
        "overhead": {"unit": "s", "buckets": s.histogram()},
        "config_versions": _ints(s.versions),
        "reloads": _ints(s.reloads),
        "workers": _ints(s.workers) if s.workers else None,
    }
