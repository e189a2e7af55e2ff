"""Strong/weak routing quality: APGR, CPT, operating points, calibration (pure numpy).

Vocabulary: each prompt has the score of the strong model's answer and of the weak
model's (0/1 correctness or a grade in [0, 1]); a router gives each prompt a ``score``
(higher: send to the strong/premium tier first). Sending a set of prompts to the strong
model gives a *premium share* ``p`` (fraction of prompts sent) and a *quality* ``q`` (mean
score of the answers actually served). ``PGR = (q - q_weak) / (q_strong - q_weak)`` is the
performance gap recovered: 0 when everything goes to the weak model, 1 when everything
goes to the strong one.

APGR follows RouteLLM's evaluation code (``routellm/evals/benchmarks.py`` and
``evaluate.py``) exactly:

1. thresholds are the ``bins + 1`` quantiles of the router's scores at 0, 1/bins, ... 1
   (linear interpolation, as ``pandas.qcut(scores, bins, retbins=True)``; RouteLLM uses
   ``bins = 10``); duplicates are kept;
2. for threshold ``i`` the prompts with ``score >= t_i`` go to the strong model, except
   for the last threshold, where ``score > t_i`` (so the curve runs from share 1 to 0);
3. each threshold gives a point (share, quality); sorted by share, the area under the
   quality curve is the trapezoid rule (``numpy.trapz``) over share in [0, 1];
4. ``APGR = (AUC - AUC_weak) / (AUC_strong - AUC_weak)`` where ``AUC_weak`` and
   ``AUC_strong`` are the same trapezoid over constant ``q_weak`` / ``q_strong`` lines on
   the same shares: always-weak scores 0, always-strong 1, and a router that cannot rank
   (random, or all scores equal) about 0.5.

CPT(x) is the premium share at which the router's curve first recovers ``x`` of the gap,
interpolated linearly between curve points. RouteLLM computes it with ``numpy.interp``
over the same points, which gives the same value when the curve rises monotonically; the
first crossing is also defined when it does not.

The oracle (RouteLLM's ``get_optimal_accuracy``) sends first the prompts where the strong
model gains most over the weak one, and only prompts with a positive gain: with 0/1
scores its quality at share ``p`` is ``q_weak + min(n p, #(strong right, weak wrong)) / n``.
The random router's expected quality is the straight line ``q_weak + p (q_strong - q_weak)``.

An *operating point* is one concrete decision (which prompts went to premium): its share,
its quality, its PGR ("quality recovered") and its lift over random at that share, ``PGR -
share`` (a random router at share ``p`` recovers ``p`` of the gap on average).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
ROUTELLM_BINS = 10
CPT_LEVELS = (0.5, 0.8, 0.95)


class EvaluationError(ValueError):
    """The labelled data cannot be evaluated (one line for the operator)."""


def _arrays(*values: Sequence[float] | Floats) -> list[Floats]:
    out = [np.asarray(v, dtype=np.float64) for v in values]
    if len({len(a) for a in out}) != 1 or len(out[0]) == 0:
        raise EvaluationError("scores and labels must be non-empty and of the same length")
    return out


@dataclass(frozen=True, slots=True)
class Gap:
    """The two reference qualities: always-weak and always-strong."""

    weak: float
    strong: float

    @classmethod
    def of(cls, strong: Sequence[float] | Floats, weak: Sequence[float] | Floats) -> Gap:
        st, wk = _arrays(strong, weak)
        gap = cls(float(wk.mean()), float(st.mean()))
        if gap.strong <= gap.weak:
            raise EvaluationError(
                f"the strong model is not better than the weak one on this data "
                f"(quality {gap.strong:.4f} vs {gap.weak:.4f}): APGR is undefined"
            )
        return gap

    def pgr(self, quality: Floats | float) -> Floats:
        """Performance gap recovered for each quality."""
        return (np.asarray(quality, dtype=np.float64) - self.weak) / (self.strong - self.weak)


@dataclass(frozen=True, slots=True)
class Curve:
    """Quality against premium share, sorted by share (duplicates kept)."""

    share: Floats
    quality: Floats

    def apgr(self, gap: Gap) -> float:
        """RouteLLM's normalised area (module doc, step 4)."""
        auc = float(np.trapezoid(self.quality, self.share))
        weak = float(np.trapezoid(np.full_like(self.share, gap.weak), self.share))
        strong = float(np.trapezoid(np.full_like(self.share, gap.strong), self.share))
        return (auc - weak) / (strong - weak)

    def cpt(self, gap: Gap, level: float) -> float | None:
        """Share at which PGR first reaches ``level`` (None if it never does)."""
        pgr = gap.pgr(self.quality)
        tol = 1e-12
        if pgr[0] >= level - tol:
            return float(self.share[0])
        for i in range(1, len(pgr)):
            if pgr[i] >= level - tol:
                lo, hi = pgr[i - 1], pgr[i]
                frac = (level - lo) / (hi - lo) if hi > lo else 1.0
                return float(self.share[i - 1] + frac * (self.share[i] - self.share[i - 1]))
        return None


def router_curve(
    scores: Sequence[float] | Floats,
    strong: Sequence[float] | Floats,
    weak: Sequence[float] | Floats,
    bins: int = ROUTELLM_BINS,
) -> Curve:
    """The router's (share, quality) points at RouteLLM's quantile thresholds."""
    s, st, wk = _arrays(scores, strong, weak)
    thresholds = np.quantile(s, np.linspace(0.0, 1.0, bins + 1))
    shares: list[float] = []
    qualities: list[float] = []
    for i, t in enumerate(thresholds):
        chosen = s > t if i == len(thresholds) - 1 else s >= t
        shares.append(float(chosen.mean()))
        qualities.append(float(np.where(chosen, st, wk).mean()))
    order = np.argsort(np.asarray(shares), kind="stable")
    return Curve(np.asarray(shares)[order], np.asarray(qualities)[order])


def oracle_curve(strong: Sequence[float] | Floats, weak: Sequence[float] | Floats) -> Curve:
    """Best achievable quality at each whole number of strong calls (positive gains first).

    Between two whole numbers the oracle is linear (fractional calls), so the trapezoid
    over these points is its exact area."""
    st, wk = _arrays(strong, weak)
    n = len(st)
    gains = np.sort(np.clip(st - wk, 0.0, None))[::-1]
    cum = np.concatenate([[0.0], np.cumsum(gains)])
    return Curve(np.arange(n + 1) / n, (wk.sum() + cum) / n)


def random_curve(gap: Gap, points: int = 101) -> Curve:
    """A random router's expected quality: the straight line between the two models."""
    share = np.linspace(0.0, 1.0, points)
    return Curve(share, gap.weak + share * (gap.strong - gap.weak))


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """One decision's premium share, quality, PGR, lift over random, and mean cost."""

    share: float
    quality: float
    recovered: float
    lift: float
    cost: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "premium_share": self.share,
            "quality": self.quality,
            "quality_recovered": self.recovered,
            "lift_over_random": self.lift,
            "mean_cost": self.cost,
        }


def operating_point(
    premium: Sequence[bool] | npt.NDArray[np.bool_],
    strong: Sequence[float] | Floats,
    weak: Sequence[float] | Floats,
    costs: tuple[Floats, Floats] | None = None,
) -> OperatingPoint:
    """Where one decision lands; ``costs`` = (strong, weak) cost per prompt (NaN: unknown)."""
    chosen = np.asarray(premium, dtype=bool)
    st, wk = _arrays(strong, weak)
    if len(chosen) != len(st):
        raise EvaluationError("one premium decision per labelled prompt is needed")
    gap = Gap.of(st, wk)
    share = float(chosen.mean())
    quality = float(np.where(chosen, st, wk).mean())
    recovered = float(gap.pgr(quality))
    cost = None
    if costs is not None:
        served = np.where(chosen, costs[0], costs[1])
        cost = None if np.isnan(served).any() else float(served.mean())
    return OperatingPoint(share, quality, recovered, recovered - share, cost)


@dataclass(frozen=True, slots=True)
class CalibrationPoint:
    """The knob asked for ``asked`` premium share; the decision gave ``point``."""

    asked: float
    point: OperatingPoint

    def as_dict(self) -> dict[str, float | None]:
        return {
            "asked": self.asked,
            "got": self.point.share,
            "quality_recovered": self.point.recovered,
            "lift_over_random": self.point.lift,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``routeiq eval`` prints for a strong/weak labelled set."""

    n: int
    gap: Gap
    apgr: float
    cpt: dict[float, float | None]
    oracle_apgr: float
    curve: Curve
    default: OperatingPoint | None = None
    calibration: tuple[CalibrationPoint, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "quality_strong": self.gap.strong,
            "quality_weak": self.gap.weak,
            "apgr": self.apgr,
            "apgr_random": 0.5,
            "apgr_oracle": self.oracle_apgr,
            **{f"cpt{round(level * 100)}": v for level, v in self.cpt.items()},
            "default": None if self.default is None else self.default.as_dict(),
            "calibration": [c.as_dict() for c in self.calibration],
        }


def evaluate(
    scores: Sequence[float] | Floats,
    strong: Sequence[float] | Floats,
    weak: Sequence[float] | Floats,
    bins: int = ROUTELLM_BINS,
) -> Report:
    """APGR, CPT(50/80/95) and the oracle's APGR for a router's scores."""
    s, st, wk = _arrays(scores, strong, weak)
    gap = Gap.of(st, wk)
    curve = router_curve(s, st, wk, bins)
    return Report(
        n=len(s),
        gap=gap,
        apgr=curve.apgr(gap),
        cpt={level: curve.cpt(gap, level) for level in CPT_LEVELS},
        oracle_apgr=oracle_curve(st, wk).apgr(gap),
        curve=curve,
    )
