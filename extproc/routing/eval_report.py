"""``routeiq eval`` on strong/weak labelled data: run the router, measure, describe.

The router classifies every labelled prompt once under the config's own knob: its
``score`` (the need for premium) ranks the prompts for APGR and CPT, and the prompts whose
``tier`` is ``premium`` give the config's operating point. Each calibration share (and
``--premium-share``) re-tiers those classifications with the ``auto`` knob moved there
(``Router.with_knob``, then ``Router.retier``: nothing is re-embedded), giving the premium
share actually obtained on this set. Under ``calibration: traffic`` the labelled set is
taken as the traffic (``scoring.as_traffic``): the share bars are set on its own needs. A config
without the cost-quality rule has no knob: its operating point is still measured (the
category tiers), the calibration is skipped and said so.

"Premium" is the strong model and every other tier the weak one: the labelled files hold
two models' answers, not one per tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from extproc.routing.evaluation import (
    CalibrationPoint,
    Curve,
    OperatingPoint,
    Report,
    evaluate,
    operating_point,
    oracle_curve,
    random_curve,
    router_curve,
)
from extproc.routing.labelled import StrongWeak
from extproc.routing.router import Classification, Router
from extproc.routing.scoring import (
    ToolError,
    as_traffic,
    classify_many,
    request_of,
    takes_batch_as_traffic,
    with_share,
)

PREMIUM = "premium"
DEFAULT_SHARES = (0.1, 0.3, 0.5)
PLOT_BINS = 100  # finer thresholds for the drawn curve (APGR keeps RouteLLM's 10)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A report plus what a plot needs and where the data and router came from."""

    report: Report
    pair: StrongWeak
    origin: str
    fine: Curve
    oracle: Curve
    random: Curve
    has_knob: bool
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "config": self.origin,
            "strong": self.pair.strong,
            "weak": self.pair.weak,
            "skipped_rows": self.pair.skipped,
            **self.report.as_dict(),
        }
        costs = _reference_costs(self.pair)
        if costs is not None:
            out["mean_cost_strong"], out["mean_cost_weak"] = costs
        out["notes"] = list(self.notes)
        return out


def _reference_costs(pair: StrongWeak) -> tuple[float, float] | None:
    if np.isnan(pair.strong_costs).any() or np.isnan(pair.weak_costs).any():
        return None
    return float(pair.strong_costs.mean()), float(pair.weak_costs.mean())


def _point(classes: Sequence[Classification], pair: StrongWeak) -> OperatingPoint:
    premium = [c.tier == PREMIUM for c in classes]
    return operating_point(
        premium, pair.strong_scores, pair.weak_scores, (pair.strong_costs, pair.weak_costs)
    )


def _traffic_notes(router: Router, raw: Sequence[Classification], pair: StrongWeak) -> list[str]:
    """Say when the bars were set on this set (``calibration: traffic``), and where the
    reference bars alone would have put it."""
    if not takes_batch_as_traffic(router, len(raw)):
        return []
    fixed = _point([router.retier(c) for c in raw], pair)
    return [
        "bars set on this set's own needs (costQuality.calibration.source traffic), as a "
        "server's window fills with such traffic: the shares hold by construction (less "
        "what category floors and ceilings move); with "
        f"the reference bars alone: {_point_text(fixed)}"
    ]


def _largest_tie(scores: np.ndarray) -> float:
    """Share of the prompts in the largest group (of two or more) of equal scores."""
    _, counts = np.unique(scores, return_counts=True)
    largest = int(counts.max()) if len(counts) else 0
    return largest / len(scores) if largest >= 2 else 0.0


def evaluate_router(
    router: Router,
    pair: StrongWeak,
    origin: str,
    shares: Sequence[float] = DEFAULT_SHARES,
    workers: int = 1,
) -> Evaluation:
    """Classify ``pair``'s prompts and measure; ``shares`` are the calibration points;
    ``workers`` as in :func:`extproc.routing.scoring.classify_many`."""
    requests = [request_of({"prompt": p}) for p in pair.prompts]
    raw = classify_many(router, requests, label="eval", workers=workers)
    base = as_traffic(router, raw)
    scores = np.array([c.score for c in base], dtype=np.float64)
    report = evaluate(scores, pair.strong_scores, pair.weak_scores)
    notes: list[str] = _traffic_notes(router, raw, pair)
    has_knob = getattr(router.spec, "cost_quality", None) is not None
    calibration: list[CalibrationPoint] = []
    if shares and not has_knob:
        notes.append(
            "calibration skipped: the config has no cost-quality knob (spec.routing.costQuality)"
        )
    for share in shares if has_knob else ():
        classes = as_traffic(with_share(router, share), base)
        calibration.append(CalibrationPoint(share, _point(classes, pair)))
    tie = _largest_tie(scores)
    if tie >= 0.1:
        notes.append(
            f"{100 * tie:.0f}% of the prompts share one score (identical embedded "
            "text, e.g. the same few-shot preamble cut at maxTokens): the router "
            "cannot rank them"
        )
    if pair.skipped:
        notes.append(f"{pair.skipped} rows without a score for both models were left out")
    report = Report(
        n=report.n,
        gap=report.gap,
        apgr=report.apgr,
        cpt=report.cpt,
        oracle_apgr=report.oracle_apgr,
        curve=report.curve,
        default=_point(base, pair),
        calibration=tuple(calibration),
    )
    return Evaluation(
        report=report,
        pair=pair,
        origin=origin,
        fine=router_curve(scores, pair.strong_scores, pair.weak_scores, bins=PLOT_BINS),
        oracle=oracle_curve(pair.strong_scores, pair.weak_scores),
        random=random_curve(report.gap),
        has_knob=has_knob,
        notes=tuple(notes),
    )


def parse_shares(text: str) -> tuple[float, ...]:
    """``0.1,0.3,0.5`` -> shares; ``none`` or empty -> none (ToolError on anything else)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        shares = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ToolError(f"--calibrate wants shares like 0.1,0.3,0.5, got '{text}'") from None
    if any(not 0.0 <= s <= 1.0 for s in shares):
        raise ToolError(f"--calibrate shares must be within 0..1, got '{text}'")
    return shares


def _pct(value: float | None) -> str:
    return "never" if value is None else f"{100 * value:.1f}%"


def _point_text(point: OperatingPoint) -> str:
    cost = "" if point.cost is None else f", mean cost ${point.cost:.6f}"
    return (
        f"premium share {_pct(point.share)}, quality {point.quality:.4f}, "
        f"quality recovered {_pct(point.recovered)}, lift over random "
        f"{100 * point.lift:+.1f} points{cost}"
    )


def format_text(ev: Evaluation) -> str:
    """The human-readable report (``--json`` prints :meth:`Evaluation.as_dict`)."""
    r = ev.report
    lines = [
        f"{r.n} prompts; strong {ev.pair.strong}: {r.gap.strong:.4f}, "
        f"weak {ev.pair.weak}: {r.gap.weak:.4f}; router from {ev.origin}",
        f"APGR {r.apgr:.3f} (random 0.500, oracle {r.oracle_apgr:.3f}); "
        + ", ".join(f"CPT({round(k * 100)}%) {_pct(v)}" for k, v in r.cpt.items()),
    ]
    if r.default is not None:
        lines.append(f"config's operating point: {_point_text(r.default)}")
    costs = _reference_costs(ev.pair)
    if costs is not None:
        lines.append(f"mean cost: always-strong ${costs[0]:.6f}, always-weak ${costs[1]:.6f}")
    for c in r.calibration:
        lines.append(f"knob asked {_pct(c.asked)}: {_point_text(c.point)}")
    lines.extend(f"note: {n}" for n in ev.notes)
    return "\n".join(lines)
