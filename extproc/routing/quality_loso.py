"""Leave-one-family-out evaluation of need models (training and evaluation only).

For each held-out family F (one benchmark: RouteLLM MMLU, MMLU-Pro's own questions, ARC,
MBPP, Winogrande, LLMRouter's own tasks) the model is trained on the rows of the other
families, minus every row that shares F's benchmark (LLMRouter's ``arc_challenge`` when
ARC is held out, MMLU-Pro's ``ori_mmlu`` rows when RouteLLM MMLU is) and minus any row
whose question text equals one of F's. It then scores F's rows, and F's strong/weak pair
gives APGR, CPT(50%), CPT(80%) and the operating point of a premium share calibrated on
the *training* rows' predictions (family-balanced), exactly as a shipped model would be
calibrated on a reference set that does not contain the traffic it meets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.metrics import pgr_curve, strong_weak_report
from extproc.routing.quality_data import PAIRS, QualityData

Array = npt.NDArray[Any]
# Train on (rows, weights) -> a predictor of need for row indices.
Trainer = Callable[[Array, Array], Callable[[Array], Array]]
HOME_BENCH = {
    "routellm-mmlu": "mmlu",
    "mmlu-pro": "mmlu-pro",
    "arc": "arc",
    "mbpp": "mbpp",
    "winogrande": "winogrande",
    "llmrouter": "llmrouter-",
}
FAMILIES: tuple[str, ...] = tuple(HOME_BENCH)
# Parts of a held-out family also scored on their own (same fold, same model).
SUBSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "llmrouter-math": (
        "llmrouter",
        ("llmrouter-gsm8k", "llmrouter-math", "llmrouter-agentverse-mgsm"),
    ),
}


def home(data: QualityData, family: str) -> Array:
    """Mask of the rows (of any source) from ``family``'s own benchmark."""
    bench = data.bench.astype(str)
    if family == "llmrouter":  # LLMRouter's own tasks: every llmrouter-* benchmark
        return np.asarray(np.char.startswith(bench, HOME_BENCH[family]))
    return np.asarray(bench == HOME_BENCH[family])


def eval_rows(data: QualityData, family: str) -> Array:
    """Indices of ``family``'s rows from its own benchmark (pair scores present)."""
    source, strong, weak = PAIRS[family]
    ok = (data.family == family) & home(data, family)
    ok &= ~np.isnan(data.scores[:, data.column(source, strong)])
    ok &= ~np.isnan(data.scores[:, data.column(source, weak)])
    return np.nonzero(ok)[0]


def train_rows(data: QualityData, family: str, held: Array) -> Array:
    """Indices usable for training when ``family`` is held out (see module doc)."""
    keep = (data.family != family) & ~home(data, family)
    keep &= ~np.isin(data.key, data.key[held])
    return np.nonzero(keep)[0]


def balanced_weights(groups: Array) -> Array:
    """Weights giving every group the same total weight (mean weight 1)."""
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return np.asarray(w * len(groups) / w.sum(), dtype=np.float64)


def weighted_quantile(values: Array, weights: Array, q: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    cum /= cum[-1]
    at = min(int(np.searchsorted(cum, q)), len(values) - 1)
    return float(values[order][at])


@dataclass(frozen=True)
class FoldResult:
    family: str
    apgr: float
    cpt50: float
    cpt80: float
    share: float  # premium share the calibrated bar gave on the held-out family
    pgr: float  # quality recovered at that share
    n: int

    @property
    def lift(self) -> float:
        """Quality recovered minus premium share: the margin over a random router."""
        return self.pgr - self.share


def score_fold(
    data: QualityData,
    family: str,
    pred: Array,
    ref_pred: Array,
    ref_w: Array,
    share: float,
    rows: Array | None = None,
    name: str | None = None,
    traffic: bool = False,
) -> FoldResult:
    """Metrics of predictions ``pred`` on ``rows`` (default: ``family``'s eval rows);
    ``ref_*`` are the calibration predictions and weights; ``traffic``: the bar is
    calibrated on ``pred`` itself (``calibration: traffic`` serving such a family)."""
    rows = eval_rows(data, family) if rows is None else rows
    strong, weak = data.pair(family)
    fam_rows = np.nonzero(data.family == family)[0]
    pos = np.searchsorted(fam_rows, rows)
    s, w = strong[pos], weak[pos]
    report = strong_weak_report(list(pred), list(s), list(w))
    if traffic:
        bar = float(np.quantile(pred, 1.0 - share))
    else:
        bar = weighted_quantile(ref_pred, ref_w, 1.0 - share)
    got = float(np.mean(pred >= bar))
    p, pgr = pgr_curve(list(pred), list(s), list(w))
    at = round(got * (len(p) - 1))
    return FoldResult(
        name or family, report.apgr, report.cpt50, report.cpt80, got, float(pgr[at]), len(rows)
    )


def loso(
    data: QualityData,
    fit: Callable[[Array, Array], Callable[[Array], Array]],
    share: float,
    families: tuple[str, ...] = FAMILIES,
    balance: bool = True,
    reference: Array | None = None,
    traffic: bool = False,
) -> list[FoldResult]:
    """Hold out each family in turn; ``fit(train_idx, weights)`` returns a predictor of
    row indices. The premium bar is calibrated on ``reference`` row indices when given
    (e.g. the shipped reference prompts), else on the training rows, family-balanced."""
    results = []
    for family in families:
        held = eval_rows(data, family)
        train = train_rows(data, family, held)
        w = balanced_weights(data.family[train]) if balance else np.ones(len(train))
        predict = fit(train, w)
        pred = predict(held)
        if reference is None:
            ref, ref_w = predict(train), balanced_weights(data.family[train])
        else:
            ref, ref_w = predict(reference), np.ones(len(reference))
        results.append(score_fold(data, family, pred, ref, ref_w, share, traffic=traffic))
        for name, (parent, benches) in SUBSETS.items():
            if parent == family:
                part = np.isin(data.bench[held], benches)
                results.append(
                    score_fold(
                        data, family, pred[part], ref, ref_w, share, held[part], name, traffic
                    )
                )
    return results


def subject_folds(data: QualityData, folds: int = 5) -> list[tuple[Array, Array]]:
    """RouteLLM MMLU split by subject (``folds`` groups of subjects): for each, the held-out
    rows and the training rows (every other family, minus MMLU-Pro's copies of the held-out
    subjects and any row with the same question). The closest estimate of unseen subjects."""
    rows = np.nonzero(data.family == "routellm-mmlu")[0]
    subjects = sorted(set(data.group[rows]))
    out = []
    for k in range(folds):
        names = subjects[k::folds]
        held = rows[np.isin(data.group[rows], names)]
        origins = {"ori_mmlu-" + n.removeprefix("mmlu_") for n in names}
        keep = ~np.isin(np.arange(len(data.texts)), held)
        keep &= ~np.isin(data.origin, sorted(origins))
        keep &= ~np.isin(data.key, data.key[held])
        out.append((held, np.nonzero(keep)[0]))
    return out


def subject_cv(
    data: QualityData,
    fit: Callable[[Array, Array], Callable[[Array], Array]],
    share: float,
    reference: Array | None = None,
    traffic: bool = False,
) -> FoldResult:
    """RouteLLM MMLU scored by subject folds (:func:`subject_folds`): unseen subjects;
    ``traffic``: each fold's bar is calibrated on its own predictions."""
    held_all, preds, got = [], [], []
    for held, train in subject_folds(data):
        w = balanced_weights(data.family[train])
        predict = fit(train, w)
        pred = predict(held)
        if traffic:
            bar = float(np.quantile(pred, 1.0 - share))
        elif reference is None:
            bar = weighted_quantile(predict(train), w, 1.0 - share)
        else:
            bar = float(np.quantile(predict(reference), 1.0 - share))
        held_all.append(held)
        preds.append(pred)
        got.append(pred >= bar)
    rows = np.concatenate(held_all)
    order = np.argsort(rows)
    pred = np.concatenate(preds)[order]
    premium = np.concatenate(got)[order]
    strong, weak = data.pair("routellm-mmlu")
    fam_rows = np.nonzero(data.family == "routellm-mmlu")[0]
    pos = np.searchsorted(fam_rows, rows[order])
    s, w = strong[pos], weak[pos]
    report = strong_weak_report(list(pred), list(s), list(w))
    gap = s.mean() - w.mean()
    recovered = float(np.sum((s - w) * premium) / len(s) / gap)
    return FoldResult(
        "mmlu-subjects",
        report.apgr,
        report.cpt50,
        report.cpt80,
        float(premium.mean()),
        recovered,
        len(rows),
    )


def within_family_cv(
    data: QualityData,
    fit: Callable[[Array, Array], Callable[[Array], Array]],
    family: str,
    folds: int = 5,
) -> float:
    """APGR of ``family`` scored by random ``folds``-fold CV *inside* the family: how much
    of its strong/weak gain the inputs can predict at all (a ceiling, not a transfer)."""
    rows = eval_rows(data, family)
    fold = np.random.default_rng(0).integers(0, folds, len(rows))
    pred = np.zeros(len(rows))
    for k in range(folds):
        train = rows[fold != k]
        pred[fold == k] = fit(train, np.ones(len(train)))(rows[fold == k])
    strong, weak = data.pair(family)
    pos = np.searchsorted(np.nonzero(data.family == family)[0], rows)
    return strong_weak_report(list(pred), list(strong[pos]), list(weak[pos])).apgr
