"""A/B assignment is sticky per key and follows the weights; shadow mode reports the
second strategy's view without changing the decision."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from extproc.routing import build_router
from extproc.routing.ab import Splitter
from extproc.routing.embedder import Embedder
from extproc.routing.spec import Experiment, RoutingSpec
from extproc.routing.train import fit, save_model

from .conftest import chat, tiny_data, write_tiny_models


def test_split_proportions_and_stickiness() -> None:
    s = Splitter.of(Experiment(name="exp", split={"centroid": 90, "knn": 10}))
    arms = [s.assign(f"user-{i}").arm for i in range(20000)]
    share = Counter(arms)["knn"] / len(arms)
    assert share == pytest.approx(0.10, abs=0.01)
    assert all(s.assign(f"user-{i}").arm == arms[i] for i in range(0, 20000, 97))


def test_experiment_name_reshuffles_and_zero_weight_never_serves() -> None:
    a = Splitter.of(Experiment(name="a", split={"x": 50, "y": 50}))
    b = Splitter.of(Experiment(name="b", split={"x": 50, "y": 50}))
    same = sum(a.assign(str(i)).arm == b.assign(str(i)).arm for i in range(4000)) / 4000
    assert same == pytest.approx(0.5, abs=0.05)
    z = Splitter.of(Experiment(name="z", split={"x": 100, "y": 0}, shadow=True))
    picks = {z.assign(str(i)) for i in range(500)}
    assert {(p.arm, p.shadow) for p in picks} == {("x", "y")}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    return write_tiny_models(tmp_path_factory.mktemp("ab") / "models", embedder)


def test_router_experiment_is_sticky_by_key(models: Path) -> None:
    spec = RoutingSpec.model_validate(
        {
            "modelsDir": str(models),
            "scorer": None,
            "experiments": [
                {"name": "e1", "split": {"centroid": 50, "knn": 50}, "stickyBy": "x-user-id"}
            ],
        }
    )
    router = build_router(spec, Path("/"))
    assert router.sticky_by == "x-user-id"
    req = chat("Write a Python function to sort a list.")
    seen = {router.classify(req, f"user-{i}").variant for i in range(40)}
    assert seen == {"centroid", "knn"}
    for i in range(10):
        first = router.classify(req, f"user-{i}")
        again = router.classify(chat("hello, how are you?"), f"user-{i}")
        assert first.variant == again.variant == first.strategy
        assert first.experiment == "e1"
    # Without a key the prompt decides: stable for the same prompt.
    assert len({router.classify(req, None).variant for _ in range(5)}) == 1


def test_shadow_mode_reports_disagreement(models: Path) -> None:
    spec = RoutingSpec.model_validate(
        {
            "modelsDir": str(models),
            "scorer": None,
            "categoryTiers": {"coding": "premium"},
            "experiments": [{"name": "sh", "split": {"centroid": 100, "knn": 0}, "shadow": True}],
        }
    )
    router = build_router(spec, Path("/"))
    result = router.classify(chat("Write a Python function to sort a list."), "u1")
    assert result.strategy == result.variant == "centroid"
    assert result.shadow is not None and result.shadow.strategy == "knn"
    assert result.shadow.category == result.category == "coding"
    assert not result.shadow_disagrees


def test_shadow_disagreement_is_flagged(models: Path, embedder: Embedder) -> None:
    texts, labels = tiny_data()
    rotated = {"coding": "chat", "chat": "math", "math": "coding"}
    classes, arrays, params = fit(
        "centroid", embedder.embed_many(texts), [rotated[v] for v in labels]
    )
    save_model(
        models / "rotated",
        "centroid",
        classes,
        arrays,
        params,
        kind="category",
        embedder_sha256=embedder.fingerprint,
        data={},
        metrics={},
        recipe="tests",
    )
    spec = RoutingSpec.model_validate(
        {
            "modelsDir": str(models),
            "scorer": None,
            "artefacts": {"centroid": "centroid", "other": "rotated"},
            "experiments": [{"name": "sh", "split": {"centroid": 1, "other": 0}, "shadow": True}],
        }
    )
    result = build_router(spec, Path("/")).classify(chat("Write a Python function."), None)
    assert result.category == "coding"
    assert result.shadow is not None and result.shadow.category == "chat"
    assert result.shadow.strategy == "other"
    assert result.shadow_disagrees
