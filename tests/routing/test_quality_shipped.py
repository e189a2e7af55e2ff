"""The shipped need model (models/quality): verified, provenance recorded, sane decisions
and a calibrated knob on held-out realistic prompts (models/realistic_eval.jsonl, never
used by the recipe: the reference quantiles come from models/prompts.jsonl)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from extproc.routing import Router, build_router
from extproc.routing.quality import load_need_model
from extproc.routing.quality_features import FEATURE_NAMES
from extproc.routing.spec import RoutingSpec

from .conftest import MODELS, REPO, chat


@pytest.fixture(scope="module")
def learned() -> Router:
    return build_router(RoutingSpec.model_validate({"costQuality": {}}), REPO)


def test_shipped_artefact_is_verified_and_documented() -> None:
    loaded = load_need_model(MODELS / "quality", 384)
    data = loaded.manifest.data
    assert data["kind"] == "quality" and tuple(data["features"]) == FEATURE_NAMES
    assert data["recipe"].startswith("python -m extproc.routing.quality_train")
    assert "RouteLLM" in data["source"] and "MMLU-Pro" in data["source"]
    assert len(data["data"]) >= 30 and data["metrics"]["apgr"]
    assert loaded.reference is not None and len(loaded.reference) == 1001
    assert np.all(np.diff(loaded.reference) >= 0)


def test_math_goes_premium_small_talk_stays_cheap(learned: Router) -> None:
    math = learned.classify(chat("Find all real x such that x^4 - 5x^2 + 4 = 0."))
    assert math.quality is not None and math.quality.tier == "premium" == math.tier
    assert math.quality.reason.startswith(f"need {math.quality.need:.3f} >= premium bar")
    hello = learned.classify(chat("hi there, how are you?"))
    assert hello.category == "chat" and hello.tier == "eco"
    assert "category chat->ceiling eco" in hello.rules or hello.quality.tier == "eco"  # type: ignore[union-attr]
    poem = learned.classify(chat("Write a short poem about the autumn rain."))
    assert poem.tier != "premium"


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_knob_is_calibrated_on_held_out_realistic_prompts(learned: Router, share: float) -> None:
    lines = (MODELS / "realistic_eval.jsonl").read_text().splitlines()
    requests = [chat(json.loads(line)["prompt"]) for line in lines if line]
    results = learned.with_knob(premium_share=share).classify_batch(requests)
    got = np.mean([r.quality is not None and r.quality.tier == "premium" for r in results])
    assert abs(got - share) <= 0.1, got


def test_serving_the_learned_rule_imports_neither_sklearn_nor_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from extproc.routing import build_router\n"
        "from extproc.routing.spec import RoutingSpec\n"
        "from tests.routing.conftest import chat\n"
        "spec = RoutingSpec.model_validate({'costQuality': {}})\n"
        "r = build_router(spec, Path('.'))\n"
        "r.classify(chat('hi'), None, profile='eco')\n"
        "r.with_knob(premium_share=0.2).classify_batch([chat('x = 2 + 2?')])\n"
        "bad = sorted(m for m in ('sklearn', 'scipy', 'torch', 'transformers') "
        "if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(REPO), timeout=60)
