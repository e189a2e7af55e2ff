"""Routing quality metrics: category accuracy, APGR and CPT (definitions in SOURCES.md).

A strong/weak router ranks prompts by ``score``; sending the top fraction ``p`` to the
strong model gives a quality ``q(p)`` (mean correctness of the mixed answers). The
performance gap recovered is ``PGR(p) = (q(p) - q_weak) / (q_strong - q_weak)``; APGR is
its area over ``p`` in [0, 1] (trapezoid over every integer number of strong calls), so
always-weak scores 0, always-strong 1 and a random router about 0.5. ``CPT(x)`` is the
smallest share of strong calls whose PGR reaches ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


def accuracy(predicted: Sequence[str], expected: Sequence[str]) -> float:
    """Share of equal labels."""
    if len(predicted) != len(expected) or not expected:
        raise ValueError("accuracy needs two non-empty label lists of the same length")
    return sum(p == e for p, e in zip(predicted, expected, strict=True)) / len(expected)


@dataclass(frozen=True, slots=True)
class StrongWeakReport:
    """APGR, CPT(50%), CPT(80%) and the two reference qualities."""

    apgr: float
    cpt50: float
    cpt80: float
    quality_strong: float
    quality_weak: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "quality_strong": self.quality_strong,
            "quality_weak": self.quality_weak,
            "n": float(self.n),
        }


def pgr_curve(
    scores: Sequence[float], strong: Sequence[float], weak: Sequence[float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(p, PGR(p))`` for p = 0, 1/n, ..., 1 (highest scores go to the strong model first)."""
    s = np.asarray(scores, dtype=np.float64)
    st = np.asarray(strong, dtype=np.float64)
    wk = np.asarray(weak, dtype=np.float64)
    n = len(s)
    order = np.argsort(-s, kind="stable")
    gain = np.concatenate([[0.0], np.cumsum(st[order] - wk[order])])
    quality = (wk.sum() + gain) / n
    gap = st.mean() - wk.mean()
    if gap <= 0:
        raise ValueError("the strong model is not better than the weak one on this data")
    return np.arange(n + 1) / n, (quality - wk.mean()) / gap


def strong_weak_report(
    scores: Sequence[float], strong: Sequence[float], weak: Sequence[float]
) -> StrongWeakReport:
    """APGR and CPT for a router's scores on prompts with both models' correctness."""
    p, pgr = pgr_curve(scores, strong, weak)
    apgr = float(np.sum((pgr[1:] + pgr[:-1]) / 2 * np.diff(p)))

    def cpt(x: float) -> float:
        hit = np.nonzero(pgr >= x - 1e-12)[0]
        return float(p[hit[0]]) if hit.size else 1.0

    return StrongWeakReport(
        apgr, cpt(0.5), cpt(0.8), float(np.mean(strong)), float(np.mean(weak)), len(p) - 1
    )
