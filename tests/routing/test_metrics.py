"""APGR and CPT behave as defined in SOURCES.md on hand-checkable data."""

from __future__ import annotations

import numpy as np
import pytest

from extproc.routing.metrics import accuracy, strong_weak_report


def test_accuracy() -> None:
    assert accuracy(["a", "b", "c", "d"], ["a", "b", "x", "d"]) == 0.75
    with pytest.raises(ValueError):
        accuracy([], [])


def test_oracle_random_and_reverse_routers() -> None:
    strong = [1, 1, 1, 1, 0, 1, 1, 1]
    weak = [0, 0, 1, 1, 0, 1, 0, 1]
    needs = [s - w for s, w in zip(strong, weak, strict=True)]  # 1 where only strong is right
    oracle = strong_weak_report(needs, strong, weak)
    assert oracle.quality_strong == 7 / 8 and oracle.quality_weak == 4 / 8
    assert oracle.cpt50 == pytest.approx(2 / 8)  # 2 of the 3 recoverable prompts
    assert oracle.cpt80 == pytest.approx(3 / 8)
    assert oracle.apgr > 0.8
    reverse = strong_weak_report([-n for n in needs], strong, weak)
    assert reverse.apgr < 0.5
    rng = np.random.default_rng(0)
    strong_r = rng.integers(0, 2, 4000)
    weak_r = strong_r * rng.integers(0, 2, 4000)
    rand = strong_weak_report(list(rng.random(4000)), list(strong_r), list(weak_r))
    assert rand.apgr == pytest.approx(0.5, abs=0.03)
