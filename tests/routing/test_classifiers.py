"""Numpy inference equals scikit-learn's on tiny training runs; artefacts round-trip
through .npz + JSON without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from extproc.routing.artefacts import ArtefactError
from extproc.routing.strategies import load_model, model_from_arrays
from extproc.routing.train import fit, save_model

from .conftest import unit_rows


def _data(classes: int = 3, per: int = 30, d: int = 384) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    centres = unit_rows(rng, classes, d)
    x = np.concatenate([centres[c] + 0.08 * rng.normal(size=(per, d)) for c in range(classes)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    y = [f"c{c}" for c in range(classes) for _ in range(per)]
    return x, y


def _probe(d: int = 384) -> np.ndarray:
    return unit_rows(np.random.default_rng(11), 40, d)


@pytest.mark.parametrize("classes", [2, 3])
def test_linear_matches_logistic_regression(classes: int) -> None:
    x, y = _data(classes)
    names, arrays, params = fit("linear", x, y)
    ours = model_from_arrays("linear", names, arrays, params).scores(_probe())
    scaler = StandardScaler().fit(x)
    ref = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(x), y)
    np.testing.assert_allclose(ours, ref.predict_proba(scaler.transform(_probe())), atol=1e-4)


def test_svm_argmax_matches_linear_svc() -> None:
    x, y = _data()
    names, arrays, params = fit("svm", x, y)
    ours = model_from_arrays("svm", names, arrays, params).scores(_probe())
    scaler = StandardScaler().fit(x)
    ref = LinearSVC(C=0.1, max_iter=5000, random_state=0).fit(scaler.transform(x), y)
    assert [names[i] for i in ours.argmax(axis=1)] == list(ref.predict(scaler.transform(_probe())))
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("classes", [2, 3])
def test_mlp_matches_mlp_classifier(classes: int) -> None:
    x, y = _data(classes)
    params = {"hidden": 16, "max_iter": 200}
    names, arrays, fitted = fit("mlp", x, y, params=params)
    ours = model_from_arrays("mlp", names, arrays, fitted).scores(_probe())
    scaler = StandardScaler().fit(x)
    idx = np.asarray([names.index(v) for v in y])
    ref = MLPClassifier(
        hidden_layer_sizes=(16,), alpha=1e-3, max_iter=200, early_stopping=True, random_state=0
    ).fit(scaler.transform(x), idx)
    np.testing.assert_allclose(ours, ref.predict_proba(scaler.transform(_probe())), atol=1e-4)


def test_knn_matches_kneighbors() -> None:
    x, y = _data()
    names, arrays, params = fit("knn", x, y, params={"k": 5})
    ours = model_from_arrays("knn", names, arrays, params).scores(_probe())
    ref = KNeighborsClassifier(n_neighbors=5, metric="cosine").fit(x, y)
    np.testing.assert_allclose(ours, ref.predict_proba(_probe()), atol=1e-6)


def test_centroid_keeps_one_prototype_per_group() -> None:
    x, y = _data(classes=2)
    groups = ["a" if i % 2 else "b" for i in range(len(y))]
    names, arrays, params = fit("centroid", x, y, groups)
    assert arrays["centroids"].shape == (4, 384)
    model = model_from_arrays("centroid", names, arrays, params)
    pred = [names[i] for i in model.scores(x).argmax(axis=1)]
    assert pred == y


@pytest.mark.parametrize("strategy", ["centroid", "knn", "linear", "svm", "mlp"])
def test_npz_round_trip(tmp_path: Path, strategy: str) -> None:
    x, y = _data()
    names, arrays, params = fit(strategy, x, y, params={"hidden": 8} if strategy == "mlp" else None)
    save_model(
        tmp_path / strategy,
        strategy,
        names,
        arrays,
        params,
        kind="category",
        embedder_sha256="e",
        data={"d.jsonl": {"sha256": "x"}},
        metrics={"acc": 1.0},
        recipe="test",
    )
    loaded = load_model(tmp_path / strategy)
    assert loaded.strategy == strategy and loaded.kind == "category"
    assert loaded.manifest.data["metrics"] == {"acc": 1.0}
    before = model_from_arrays(strategy, names, arrays, params).scores(_probe())
    np.testing.assert_allclose(loaded.model.scores(_probe()), before, atol=1e-6)


def test_pickled_and_tampered_weights_are_refused(tmp_path: Path) -> None:
    x, y = _data()
    names, arrays, params = fit("linear", x, y)
    save_model(
        tmp_path / "m",
        "linear",
        names,
        arrays,
        params,
        kind="category",
        embedder_sha256="e",
        data={},
        metrics={},
        recipe="test",
    )
    weights = tmp_path / "m" / "weights.npz"
    np.savez(weights, mean=np.array([object()], dtype=object))
    with pytest.raises(ArtefactError, match="does not match the manifest"):
        load_model(tmp_path / "m")
    # Even with a matching hash, an object array is never unpickled.
    import json

    from extproc.routing.artefacts import sha256_file

    manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
    manifest["files"]["weights.npz"] = sha256_file(weights)
    (tmp_path / "m" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtefactError, match="not a plain numeric npz"):
        load_model(tmp_path / "m")
