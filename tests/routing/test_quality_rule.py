"""The cost-quality rule: bars from shares, tier by need, floors/ceilings, profiles, knob.

A tiny real quality artefact whose need grows with prompt length (``sigmoid(log_chars -
4)``: the embedding weights are zero) makes every expected tier computable by hand; the
real embedder and centroid router run underneath.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from extproc.config.errors import ConfigError
from extproc.routing import build_router
from extproc.routing.quality_artefact import save_need_model
from extproc.routing.quality_features import FEATURE_NAMES
from extproc.routing.spec import RoutingSpec

from .conftest import MODELS, chat

WIDTH = 384 + len(FEATURE_NAMES)


def length_need(text: str) -> float:
    return 1.0 / (1.0 + math.exp(-(math.log1p(len(text)) - 4.0)))


def write_length_model(root: Path, reference: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("embedder", "centroid"):
        (root / name).symlink_to(MODELS / name)
    w = np.zeros((WIDTH, 1), dtype=np.float32)
    w[384 + FEATURE_NAMES.index("log_chars"), 0] = 1.0
    save_need_model(
        root / "quality",
        mean=np.zeros(WIDTH),
        scale=np.ones(WIDTH),
        weights=[w],
        biases=[np.array([-4.0])],
        reference_needs=np.array([length_need(t) for t in reference]),
        output="sigmoid",
        use_embedding=True,
        meta={"recipe": "tests", "source": "tests"},
    )
    return root


def prompts(rng: random.Random, n: int) -> list[str]:
    """Prompts of 20-600 characters (log-uniform), so needs rarely tie."""
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "paper"]
    out = []
    for _ in range(n):
        size = int(math.exp(rng.uniform(math.log(20), math.log(600))))
        out.append(" ".join(rng.choice(words) for _ in range(size // 5 + 1))[:size])
    return out


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_length_model(
        tmp_path_factory.mktemp("q") / "models", prompts(random.Random(1), 400)
    )


def spec_of(models_dir: Path, **cost_quality: object) -> RoutingSpec:
    """No category bounds unless given: the length model's tiers stay computable by hand."""
    cost_quality.setdefault("ceilings", {})
    return RoutingSpec.model_validate(
        {"modelsDir": str(models_dir), "scorer": None, "costQuality": cost_quality}
    )


def test_need_above_the_bar_goes_premium_below_eco(models_dir: Path) -> None:
    spec = spec_of(models_dir, threshold=0.7, ecoThreshold=0.3)
    router = build_router(spec, models_dir)
    long = "Explain the trade-offs between these designs in detail. " * 6  # 342 chars: need 0.861
    short = "hi"  # need 0.047
    middle = "Write a haiku about the sea."  # 28 chars: need 0.381
    for text, tier in ((long, "premium"), (short, "eco"), (middle, "standard")):
        result = router.classify(chat(text))
        assert result.quality is not None
        assert result.quality.need == pytest.approx(length_need(text), abs=1e-5)
        assert result.tier == tier == result.quality.tier
        assert result.score == pytest.approx(result.quality.need)
    why = router.classify(chat(long)).quality
    assert why is not None and why.reason == "need 0.861 >= premium bar 0.700: premium"


def test_category_floor_and_ceiling_win(models_dir: Path) -> None:
    spec = spec_of(
        models_dir,
        threshold=0.7,
        ecoThreshold=0.3,
        floors={"chat": "premium"},
        ceilings={"coding": "eco"},
    )
    router = build_router(spec, models_dir)
    hello = router.classify(chat("hello, how are you?"))
    assert hello.category == "chat" and hello.quality is not None
    assert hello.quality.tier == "eco" and hello.tier == "premium"
    assert "category chat->floor premium" in hello.rules
    code = router.classify(chat("Write a Python function that merges two sorted lists " * 3))
    assert code.category == "coding" and code.quality is not None
    assert code.quality.tier == "premium" and code.tier == "eco"


def test_share_is_calibrated_on_reference_prompts(models_dir: Path, tmp_path: Path) -> None:
    reference = tmp_path / "ref.jsonl"
    reference.write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts(random.Random(2), 300))
    )
    spec = spec_of(models_dir, premiumShare=0.3, ecoShare=0.2, referencePrompts=str(reference))
    router = build_router(spec, models_dir)
    held_out = [chat(p) for p in prompts(random.Random(3), 300)]
    tiers = [c.tier for c in router.classify_batch(held_out)]
    assert abs(tiers.count("premium") / 300 - 0.3) <= 0.07
    assert abs(tiers.count("eco") / 300 - 0.2) <= 0.07
    for share in (0.1, 0.5):
        moved = [c.tier for c in router.with_knob(premium_share=share).classify_batch(held_out)]
        assert abs(moved.count("premium") / 300 - share) <= 0.07


def test_shipped_quantiles_calibrate_and_profiles_are_points_on_the_curve(
    models_dir: Path,
) -> None:
    router = build_router(spec_of(models_dir, premiumShare=0.5), models_dir)
    assert router.quality is not None
    median = float(np.median(router.quality.reference))
    assert router.quality.bars["auto"].premium == pytest.approx(median)
    text = "x" * 400  # need 0.88: above the median of the reference set
    assert router.classify(chat(text)).tier == "premium"
    eco = router.classify(chat(text), profile="eco")
    assert eco.quality is not None and eco.quality.profile == "eco" and eco.tier != "premium"
    assert router.classify(chat("hi"), profile="premium").tier == "premium"


def test_with_knob_threshold_and_errors(models_dir: Path) -> None:
    router = build_router(spec_of(models_dir, premiumShare=0.3), models_dir)
    strict = router.with_knob(threshold=0.99)
    assert strict.classify(chat("a medium sized question about rivers?")).tier != "premium"
    assert strict.quality is not None and strict.quality.bars["auto"].premium == 0.99
    with pytest.raises(ValueError, match="exactly one"):
        router.with_knob(premium_share=0.2, threshold=0.5)
    off = build_router(RoutingSpec(models_dir=str(models_dir), scorer=None), models_dir)
    with pytest.raises(ValueError, match="off"):
        off.with_knob(premium_share=0.3)


def test_knob_validation() -> None:
    with pytest.raises(ValidationError, match="not both"):
        RoutingSpec.model_validate({"costQuality": {"premiumShare": 0.2, "threshold": 0.5}})
    with pytest.raises(ValidationError, match="unknown categories"):
        RoutingSpec.model_validate({"costQuality": {"floors": {"nonsense": "premium"}}})
    with pytest.raises(ValidationError):
        RoutingSpec.model_validate({"costQuality": {"premiumShare": 1.5}})
    only_raw = RoutingSpec.model_validate({"costQuality": {"threshold": 0.5}}).cost_quality
    assert only_raw is not None and only_raw.premium_share is None


def test_tampered_quality_weights_are_refused(tmp_path: Path) -> None:
    root = write_length_model(tmp_path / "models", ["a", "bb", "ccc"] * 10)
    with (root / "quality" / "weights.npz").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ConfigError, match="does not match the manifest"):
        build_router(spec_of(root, premiumShare=0.3), root)
