"""APGR, CPT, oracle, random and operating points on files small enough to do by hand."""

from __future__ import annotations

import numpy as np
import pytest

from extproc.routing.evaluation import (
    EvaluationError,
    Gap,
    evaluate,
    operating_point,
    oracle_curve,
    random_curve,
    router_curve,
)

# Four prompts, router score, strong and weak correctness:
#   A 0.9  strong 1 weak 0      B 0.6  strong 1 weak 1
#   C 0.3  strong 1 weak 0      D 0.1  strong 0 weak 0
SCORES = [0.9, 0.6, 0.3, 0.1]
STRONG = [1.0, 1.0, 1.0, 0.0]
WEAK = [0.0, 1.0, 0.0, 0.0]


def test_apgr_and_cpt_by_hand() -> None:
    """q_strong = 3/4, q_weak = 1/4, gap 1/2.

    RouteLLM thresholds: the deciles of the scores (linear interpolation on the sorted
    scores 0.1, 0.3, 0.6, 0.9 at positions 0, 0.3, ..., 3): 0.1, 0.16, 0.22, 0.28, 0.36,
    0.45, 0.54, 0.63, 0.72, 0.81, 0.9. ``score >= t`` (``> t`` for the last) sends 4, 3, 3,
    3, 2, 2, 2, 1, 1, 1, 0 prompts to the strong model: shares 1, 0.75 (x3), 0.5 (x3),
    0.25 (x3), 0. Repeated shares add no area, so the curve is, by share:
        0 -> q 1/4 (PGR 0); 0.25 (A strong) -> 2/4 (PGR 0.5); 0.5 (+B, no gain) -> 2/4
        (0.5); 0.75 (+C) -> 3/4 (1); 1 (+D, no gain) -> 3/4 (1).
    APGR = trapezoid of PGR, width 0.25: (0 + .5)/2 + (.5 + .5)/2 + (.5 + 1)/2 + (1 + 1)/2
         = 0.25 + 0.5 + 0.75 + 1 = 2.5, times 0.25 = 0.625.
    CPT(50%) = 0.25 (reached at a point). CPT(80%): between share 0.5 (PGR 0.5) and 0.75
    (PGR 1): 0.5 + 0.25 * 0.3/0.5 = 0.65. CPT(95%) = 0.5 + 0.25 * 0.45/0.5 = 0.725.
    Oracle: two prompts gain (A, C): PGR(p) = min(2p, 1), area 0.25 + 0.5 = 0.75.
    """
    report = evaluate(SCORES, STRONG, WEAK)
    assert report.gap == Gap(weak=0.25, strong=0.75)
    assert report.apgr == pytest.approx(0.625)
    assert report.cpt == pytest.approx({0.5: 0.25, 0.8: 0.65, 0.95: 0.725})
    assert report.oracle_apgr == pytest.approx(0.75)
    curve = router_curve(SCORES, STRONG, WEAK)
    assert curve.share.tolist() == pytest.approx(
        [0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1]
    )
    assert curve.quality[[0, 1, 4, 7, 10]].tolist() == pytest.approx([0.25, 0.5, 0.5, 0.75, 0.75])
    as_dict = report.as_dict()
    assert as_dict["apgr"] == pytest.approx(0.625) and as_dict["cpt80"] == pytest.approx(0.65)
    assert as_dict["apgr_random"] == 0.5


def test_ranking_backwards_and_not_at_all() -> None:
    """Reversed scores send D first (no gain: PGR 0 at 0.25), then C (PGR 0.5 at 0.5), B (no
    gain: 0.5 at 0.75), A (1 at 1).
    Area = 0.25 * ((0+0)/2 + (0+.5)/2 + (.5+.5)/2 + (.5+1)/2) = 0.25 * 1.5 = 0.375.
    Equal scores: every threshold is the same value; ``>=`` sends all, the last ``>`` none:
    the curve is the straight line, APGR 0.5 (a router that cannot rank is random).
    """
    assert evaluate([-s for s in SCORES], STRONG, WEAK).apgr == pytest.approx(0.375)
    flat = evaluate([0.5] * 4, STRONG, WEAK)
    assert flat.apgr == pytest.approx(0.5)
    assert flat.cpt[0.5] == pytest.approx(0.5)  # on the straight line, x of the gap at share x


def test_oracle_and_random_curves() -> None:
    gap = Gap.of(STRONG, WEAK)
    oracle = oracle_curve(STRONG, WEAK)
    assert oracle.share.tolist() == [0, 0.25, 0.5, 0.75, 1]
    # one gaining prompt per quarter of the calls, until both gains are spent
    assert oracle.quality.tolist() == pytest.approx([0.25, 0.5, 0.75, 0.75, 0.75])
    rnd = random_curve(gap, points=3)
    assert rnd.quality.tolist() == pytest.approx([0.25, 0.5, 0.75])
    assert rnd.apgr(gap) == pytest.approx(0.5)


def test_graded_scores_use_the_gain_not_the_correctness() -> None:
    """Graded answers (MT-Bench style, in [0, 1]): strong .9 .5, weak .1 .6.
    q_strong = .7, q_weak = .35, gap .35. The oracle sends only the first prompt (gain .8;
    the second loses .1): at share .5 quality (.9 + .6)/2 = .75 and stays there, PGR
    (.75 - .35)/.35 = 8/7 > 1: an oracle can beat always-strong when the weak model is
    better on some prompts.
    """
    oracle = oracle_curve([0.9, 0.5], [0.1, 0.6])
    assert oracle.quality.tolist() == pytest.approx([0.35, 0.75, 0.75])
    assert Gap.of([0.9, 0.5], [0.1, 0.6]).pgr(0.75) == pytest.approx(8 / 7)


def test_operating_point_and_cost() -> None:
    """A alone to premium: share 1/4, quality 2/4, PGR (0.5 - 0.25)/0.5 = 0.5, lift 0.25.
    Costs strong 4 per call, weak 1: A at 4 and B, C, D at 1 -> mean 7/4."""
    point = operating_point(
        [True, False, False, False], STRONG, WEAK, costs=(np.full(4, 4.0), np.ones(4))
    )
    assert (point.share, point.quality, point.recovered, point.lift) == pytest.approx(
        (0.25, 0.5, 0.5, 0.25)
    )
    assert point.cost == pytest.approx(1.75)
    unknown = operating_point([True] * 4, STRONG, WEAK, costs=(np.full(4, np.nan), np.ones(4)))
    assert unknown.cost is None and unknown.recovered == pytest.approx(1.0)
    assert unknown.lift == pytest.approx(0.0)


def test_undefined_cases_are_errors() -> None:
    with pytest.raises(EvaluationError, match="not better than the weak"):
        evaluate(SCORES, WEAK, STRONG)
    with pytest.raises(EvaluationError, match="same length"):
        evaluate(SCORES[:3], STRONG, WEAK)
    with pytest.raises(EvaluationError, match="one premium decision"):
        operating_point([True], STRONG, WEAK)
