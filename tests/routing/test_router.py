"""The shipped zero-config router classifies clear prompts, applies tiers and rules, and
refuses bad configuration with ConfigError."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from extproc.config.errors import ConfigError
from extproc.config.schema import TIERS
from extproc.routing import Classification, Router, build_router
from extproc.routing.embedder import Embedder
from extproc.routing.router import default_models_dir, embedding_text
from extproc.routing.spec import TIER_ORDER, EmbeddingText, RoutingSpec

from .conftest import MODELS, REPO, body_request, chat, write_tiny_models


def test_tier_names_match_schema() -> None:
    assert TIER_ORDER == TIERS


def test_default_models_dir_is_repo_models() -> None:
    assert default_models_dir() == MODELS


@pytest.mark.parametrize(
    ("prompt", "category", "tier"),
    [
        ("Write a Python function that merges two sorted lists.", "coding", "standard"),
        ("hey, how's it going today?", "chat", "eco"),
        ("Translate 'where is the station' into Spanish.", "translation", "eco"),
        ("Solve for x: 5x - 3 = 12", "math", "standard"),
        ("Write a short poem about the autumn rain.", "creative", "standard"),
    ],
)
def test_centroid_classifies_clear_prompts(
    router: Router, prompt: str, category: str, tier: str
) -> None:
    result = router.classify(chat(prompt), None)
    assert result.category == category
    assert result.tier == tier
    assert result.strategy == "centroid"
    assert result.variant is None and result.shadow is None
    assert next(iter(result.scores)) == category
    assert 0.0 <= result.score <= 1.0
    assert result.embed_ms > 0


def test_classification_is_frozen(router: Router) -> None:
    result = router.classify(chat("hello"), None)
    assert isinstance(result, Classification)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.category = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.signals["agentic"] = True  # type: ignore[index]


def test_signal_rules_raise_the_tier(router: Router) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
    result = router.classify(chat("hello, how are you?", tools=[tool]), None)
    assert result.category == "chat"
    assert result.tier == "standard"
    assert result.rules == ("agentic>=1->min standard",)
    result = router.classify(chat("Prove step by step that 7 is prime."), None)
    assert result.tier == "premium"
    assert "reasoning_markers>=1->min premium" in result.rules


def test_category_tiers_and_cap_rules_are_configurable() -> None:
    spec = RoutingSpec.model_validate(
        {
            "categoryTiers": {"coding": "premium"},
            "signalRules": [{"signal": "max_tokens", "atLeast": 1, "atMost": 50, "maxTier": "eco"}],
            "scorer": None,
        }
    )
    r = build_router(spec, REPO)
    code = "Write a Python function that merges two sorted lists."
    assert r.classify(chat(code), None).tier == "premium"
    capped = r.classify(chat(code, max_tokens=20), None)
    assert capped.tier == "eco"
    # Without a scorer the score is the tier's position.
    assert capped.score == pytest.approx(1 / 3)


def test_embedding_text_options() -> None:
    body = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "x" * 5000 + "tail"},
        ],
    }
    req = body_request(body)
    text = embedding_text(req, EmbeddingText())
    assert len(text) == 2000 and text == "x" * 2000
    text = embedding_text(req, EmbeddingText(keep="tail"))
    assert len(text) == 2000 and text.endswith("tail")
    assert embedding_text(req, EmbeddingText(include_system=True, max_chars=99999)).startswith(
        "You are terse.\n"
    )


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match="unknown categories"):
        RoutingSpec.model_validate({"categoryTiers": {"poetry": "eco"}})
    with pytest.raises(ValidationError, match="without an entry in 'artefacts'"):
        RoutingSpec.model_validate({"strategy": "forest"})
    with pytest.raises(ValidationError, match="needs 'minTier' or 'maxTier'"):
        RoutingSpec.model_validate({"signalRules": [{"signal": "tools", "atLeast": 1}]})
    with pytest.raises(ValidationError):
        RoutingSpec.model_validate({"strategyy": "centroid"})


def test_models_dir_resolves_against_base_dir(tmp_path: Path, embedder: Embedder) -> None:
    write_tiny_models(tmp_path / "m", embedder)
    spec = RoutingSpec(models_dir="m", scorer=None)
    r = build_router(spec, tmp_path)
    assert r.classify(chat("Write a Python function to sort a list."), None).category == "coding"
    with pytest.raises(ConfigError, match="does not exist"):
        build_router(spec, tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="manifest not found"):
        build_router(RoutingSpec(models_dir="m", strategy="mlp", scorer=None), tmp_path)


def test_serving_path_imports_neither_sklearn_nor_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import extproc.routing.cli\n"
        "from extproc.routing import build_router\n"
        "from extproc.routing.spec import RoutingSpec\n"
        "from tests.routing.conftest import chat\n"
        "build_router(RoutingSpec(), Path('.')).classify(chat('hi'), None)\n"
        "bad = sorted(m for m in ('sklearn', 'torch', 'transformers') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_a_repeated_text_reuses_its_category_scores(router: Router) -> None:
    """The category and top scores depend on the embedding alone: a repeated text is
    answered from ``scores_seen`` (same result, the classifier not run again), while the
    signals, which depend on the whole request, are computed afresh."""
    text = "Summarise the attached incident report for the on-call channel, 42."
    first = router.classify(chat(text))
    hits = router.scores_seen.hits
    again = router.classify(chat(text, tools=[{"type": "function", "function": {"name": "f"}}]))
    assert router.scores_seen.hits == hits + 1
    assert (again.category, dict(again.scores)) == (first.category, dict(first.scores))
    assert again.signals["tools"] == 1 and first.signals["tools"] == 0
