"""Label designs for the quality (need) model, all computed from :class:`QualityData`.

* ``pair``: the family's strong model right and its weak model wrong (0/1): exactly the
  event that makes a premium call pay off, but one noisy outcome per prompt.
* ``weak_wrong``: the weak model wrong (0/1), the label of the older ``strongweak`` scorer.
* ``ladder``: the share of the source's models that got it wrong (0..1): a difficulty
  averaged over 2 (RouteLLM), 9 (LLMRouter), 10 (MMLU-Pro) or 11 (RouterBench) models.
* ``irt``: a Rasch (1PL) difficulty fitted per source, ``P(model j right on item i) =
  sigmoid(ability_j - difficulty_i)``, z-scored per source and squashed to (0, 1).

:func:`within_family_rank` turns any of them into its percentile inside the family, which
removes base-rate differences between sources (MMLU-Pro is hard for every model, ARC easy)
so that pooling learns what makes a prompt harder *than its neighbours*.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from extproc.routing.quality_data import PAIRS, QualityData

Vector = npt.NDArray[np.float64]


def _source_columns(data: QualityData, source: str) -> list[int]:
    return [j for j, c in enumerate(data.columns) if c.startswith(f"{source}/")]


def pair_label(data: QualityData) -> Vector:
    """1 where the family's strong model is right and its weak model wrong."""
    y = np.zeros(len(data.texts))
    for family, (source, strong, weak) in PAIRS.items():
        rows = data.family == family
        if not rows.any():
            continue
        s = data.scores[rows, data.column(source, strong)]
        w = data.scores[rows, data.column(source, weak)]
        y[rows] = np.nan_to_num(s * (1.0 - w))
    return y


def weak_wrong_label(data: QualityData) -> Vector:
    """1 - the family's weak model's score."""
    y = np.zeros(len(data.texts))
    for family, (source, _, weak) in PAIRS.items():
        rows = data.family == family
        if not rows.any():
            continue
        y[rows] = 1.0 - np.nan_to_num(data.scores[rows, data.column(source, weak)], nan=1.0)
    return y


def ladder_label(data: QualityData) -> Vector:
    """Share of the row's source models that were wrong (0..1)."""
    y = np.zeros(len(data.texts))
    for source, *_ in set(PAIRS.values()):
        cols = _source_columns(data, source)
        block = data.scores[:, cols]
        rows = ~np.all(np.isnan(block), axis=1)
        if rows.any():
            y[rows] = 1.0 - np.nanmean(block[rows], axis=1)
    return y


def rasch(matrix: npt.NDArray[np.float64], iterations: int = 300, prior: float = 0.1) -> Vector:
    """Item difficulties of a Rasch model (see :func:`rasch_fit`)."""
    return rasch_fit(matrix, iterations, prior)[0]


def rasch_fit(
    matrix: npt.NDArray[np.float64], iterations: int = 300, prior: float = 0.1
) -> tuple[Vector, Vector]:
    """Item difficulties of a Rasch model fitted by gradient ascent (NaN = not asked).

    ``prior`` is an L2 penalty on difficulties so that items every model got right (or
    wrong) get a finite difficulty instead of running off to infinity.
    """
    mask = ~np.isnan(matrix)
    y = np.nan_to_num(matrix)
    b = np.zeros(matrix.shape[0])
    theta = np.zeros(matrix.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(theta[None, :] - b[:, None])))
        resid = (y - p) * mask
        info = (p * (1 - p) * mask).sum(axis=1) + prior
        b -= (resid.sum(axis=1) + prior * b) / info
        theta += resid.sum(axis=0) / np.maximum((p * (1 - p) * mask).sum(axis=0), 1e-6)
        theta -= theta.mean()
    return b, theta


def irt_label(data: QualityData) -> Vector:
    """Rasch difficulty per source, z-scored within the source, through a sigmoid."""
    y = np.zeros(len(data.texts))
    for source, *_ in set(PAIRS.values()):
        cols = _source_columns(data, source)
        rows = ~np.all(np.isnan(data.scores[:, cols]), axis=1)
        if not rows.any():
            continue
        b = rasch(data.scores[np.ix_(rows, cols)])
        z = (b - b.mean()) / (b.std() or 1.0)
        y[rows] = 1.0 / (1.0 + np.exp(-z))
    return y


def _sigmoid(t: Vector) -> Vector:
    out: Vector = 1.0 / (1.0 + np.exp(-t))
    return out


def irt_gain_label(data: QualityData) -> Vector:
    """Expected gain of the family's strong over its weak model under the source's Rasch
    fit: ``sigmoid(a_strong - b_i) - sigmoid(a_weak - b_i)`` (the pair label, denoised by
    the whole ladder; it is low for items every model gets right *or* wrong)."""
    y = np.zeros(len(data.texts))
    for family, (source, strong, weak) in PAIRS.items():
        rows = data.family == family
        cols = _source_columns(data, source)
        if not rows.any():
            continue
        src_rows = ~np.all(np.isnan(data.scores[:, cols]), axis=1)
        b, theta = rasch_fit(data.scores[np.ix_(src_rows, cols)])
        a_s = theta[cols.index(data.column(source, strong))]
        a_w = theta[cols.index(data.column(source, weak))]
        b_full = np.zeros(len(data.texts))
        b_full[src_rows] = b
        y[rows] = _sigmoid(a_s - b_full[rows]) - _sigmoid(a_w - b_full[rows])
    return np.clip(y, 0.0, 1.0)


def within_family_rank(y: Vector, family: npt.NDArray[np.str_]) -> Vector:
    """Percentile of each row's label inside its family (ties share their mean rank)."""
    out = np.zeros_like(y, dtype=np.float64)
    for name in np.unique(family):
        rows = family == name
        values = y[rows]
        ranks = rankdata(values, method="average") - 1.0
        out[rows] = (ranks + 0.5) / len(values)
    return out


LABELS: dict[str, Callable[[QualityData], Vector]] = {
    "pair": pair_label,
    "weak_wrong": weak_wrong_label,
    "ladder": ladder_label,
    "irt": irt_label,
    "irt_gain": irt_gain_label,
}
