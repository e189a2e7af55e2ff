"""The need model's recipe code: byte-reproducible artefacts, serving = training maths,
label designs and the leave-one-family-out split rules, on small real-shaped fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from extproc.routing.quality import load_need_model
from extproc.routing.quality_data import QualityData, last_block, question_key
from extproc.routing.quality_experiments import Inputs
from extproc.routing.quality_features import FEATURE_NAMES, feature_matrix, text_features
from extproc.routing.quality_fit import fit_logistic, fit_ridge, standardiser
from extproc.routing.quality_labels import (
    ladder_label,
    pair_label,
    rasch,
    within_family_rank,
)
from extproc.routing.quality_loso import eval_rows, train_rows
from extproc.routing.quality_train import Recipe, reference_quantiles, train

from .conftest import unit_rows

COLUMNS = (
    "routellm/gpt-4-1106-preview",
    "routellm/mistralai/Mixtral-8x7B-Instruct-v0.1",
    "routerbench/gpt-4-1106-preview",
    "routerbench/mistralai/mixtral-8x7b-chat",
    "routerbench/claude-v1",
)


def fixture_data(n: int = 60) -> QualityData:
    rng = np.random.default_rng(0)
    family = np.array(["routellm-mmlu"] * (n // 2) + ["arc"] * (n - n // 2))
    bench = np.array(["mmlu"] * (n // 2) + ["arc"] * (n - n // 2))
    scores = np.full((n, len(COLUMNS)), np.nan)
    half = n // 2
    scores[:half, :2] = rng.integers(0, 2, size=(half, 2))
    scores[half:, 2:] = rng.integers(0, 2, size=(n - half, 3))
    texts = tuple(f"Question {i}: what is {i} + {i * 7}?\nA. one\nB. two" for i in range(n))
    return QualityData(
        texts=texts,
        family=family,
        bench=bench,
        group=bench.copy(),
        key=np.array([question_key(t) for t in texts]),
        origin=bench.copy(),
        columns=COLUMNS,
        scores=scores,
    )


def test_recipe_writes_the_same_bytes_twice_and_serving_reads_it(tmp_path: Path) -> None:
    data = fixture_data()
    reference = [f"reference prompt number {i}?" for i in range(12)]
    texts = list(data.texts) + reference
    emb = unit_rows(np.random.default_rng(1), len(texts))
    inputs = Inputs(data, emb, feature_matrix(texts), len(reference))
    paths = [train(inputs, Recipe(), tmp_path / name, {"recipe": "tests"}) for name in "ab"]
    for name in ("weights.npz", "manifest.json"):
        assert (paths[0].parent / name).read_bytes() == (paths[1].parent / name).read_bytes()
    loaded = load_need_model(paths[0].parent, 384)
    n = len(data.texts)
    served = loaded.model.needs(emb[:n], list(data.texts))
    x = np.concatenate([emb, inputs.feats], axis=1)
    fitted = fit_ridge(x[:n], pair_label(data), np.ones(n), Recipe().param)
    assert served == pytest.approx(fitted.predict(x[:n]), abs=1e-4)
    assert loaded.reference is not None and len(loaded.reference) == 1001
    ref_needs = np.sort(fitted.predict(x[n:]))
    assert loaded.reference[0] == pytest.approx(ref_needs[0], abs=1e-4)
    assert loaded.reference[-1] == pytest.approx(ref_needs[-1], abs=1e-4)


def test_logistic_export_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(float)
    fitted = fit_logistic(x, y, np.ones(200), 0.5)
    mean, scale = standardiser(x, np.ones(200))
    reference = LogisticRegression(C=0.5, max_iter=2000).fit((x - mean) / scale, y.astype(int))
    expected = reference.predict_proba((x - mean) / scale)[:, 1]
    assert fitted.predict(x) == pytest.approx(expected, abs=1e-6)


def test_labels_and_rank_transform() -> None:
    data = fixture_data(8)
    pair = pair_label(data)
    s, w = data.scores[:, 0], data.scores[:, 1]
    assert list(pair[:4]) == list(s[:4] * (1 - w[:4]))
    ladder = ladder_label(data)
    assert ladder[5] == pytest.approx(1 - np.nanmean(data.scores[5, 2:]))
    ranks = within_family_rank(
        np.array([0.1, 0.1, 0.9, 5.0, 6.0]), np.array(["a", "a", "a", "b", "b"])
    )
    assert list(ranks) == pytest.approx([1 / 3, 1 / 3, 5 / 6, 0.25, 0.75])


def test_rasch_orders_items_by_how_many_models_fail() -> None:
    matrix = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0.0]])
    b = rasch(matrix)
    assert list(np.argsort(b)) == [0, 1, 2, 3]


def test_held_out_family_never_shares_questions_or_benchmark_with_training() -> None:
    data = fixture_data(40)
    # the same question asked in both families must not leak into training
    texts = list(data.texts)
    texts[25] = texts[3]
    key = data.key.copy()
    key[25] = key[3]
    leaky = QualityData(
        tuple(texts),
        data.family,
        data.bench,
        data.group,
        key,
        data.origin,
        data.columns,
        data.scores,
    )
    held = eval_rows(leaky, "routellm-mmlu")
    train_idx = train_rows(leaky, "routellm-mmlu", held)
    assert set(held) == set(range(20))
    assert 25 not in train_idx and set(train_idx) == set(range(20, 40)) - {25}


def test_text_features_and_few_shot_cut() -> None:
    values = dict(
        zip(FEATURE_NAMES, text_features("Prove that 2 + 2 = 4, step by step."), strict=True)
    )
    assert values["reasoning_markers"] > 0 and values["math_symbols"] > 0
    assert values["code_markers"] == 0
    few_shot = "Q1?\nA) x\nAnswer:\nA\n\nQ2 asks this?\nA) y\nAnswer:"
    assert last_block(few_shot) == "Q2 asks this?\nA) y\nAnswer:"
    assert reference_quantiles(np.array([0.0, 1.0]), np.ones(2), 3) == pytest.approx(
        [0.0, 0.5, 1.0]
    )
