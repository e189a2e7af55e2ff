"""Profiles as ``routeiq explain`` shows them: which backend and model each profile gets
under the demo config, what the headers say, and the decision in words. The demo config
turns the learned cost-quality rule on; the category rule is checked on a copy without it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config.errors import ConfigError
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.explain import explain_request
from extproc.pipeline.ask import resolve
from tests.fixtures.configs import category_rule_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "routeiq.yaml"


@pytest.fixture(scope="module")
def demo() -> Iterator[Snapshot]:
    snapshot = build_snapshot(CONFIG)
    yield snapshot
    snapshot.close()


@pytest.fixture(scope="module")
def category_rule(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshot]:
    """The demo config without ``costQuality``: ``auto`` takes the category table's tier."""
    snapshot = build_snapshot(category_rule_config(tmp_path_factory.mktemp("c") / "c.yaml"))
    yield snapshot
    snapshot.close()


async def explain(snapshot: Snapshot, model: str, text: str = "hi", **headers: str) -> Any:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})
    return await explain_request(snapshot, body.encode(), headers)


@pytest.mark.parametrize(
    ("model", "backend", "upstream", "needed"),
    [
        ("standard", "premium", "gpt-4o", "standard"),
        ("routeiq/standard", "premium", "gpt-4o", "standard"),
        ("premium", "premium", "gpt-4o", "premium"),
        ("reasoning", "premium", "o3-2025-04-16", "premium"),
        ("routeiq/reasoning", "premium", "o3-2025-04-16", "premium"),
        ("free", "local", "meta-llama/Llama-3.1-8B-Instruct", "free"),
    ],
)
async def test_fixed_tier_profiles(
    demo: Snapshot, model: str, backend: str, upstream: str, needed: str
) -> None:
    doc = await explain(demo, model)
    assert doc["outcome"] == "routed", doc
    assert (doc["backend"], doc["upstream_model"]) == (backend, upstream)
    headers = doc["response_headers"]
    assert headers["x-routeiq-needed-tier"] == needed
    assert headers["x-routeiq-tier"] == demo.backends[backend].tier.value
    assert headers["x-routeiq-routed-profile"] == model.removeprefix("routeiq/")


async def test_standard_without_a_standard_backend_says_why(demo: Snapshot) -> None:
    doc = await explain(demo, "standard")
    assert "no backend of this config has tier standard" in doc["why"]
    assert "premium (the closest tier above, tier premium)" in doc["why"]


async def test_auto_coding_goes_up_and_says_why(category_rule: Snapshot) -> None:
    """Under the category rule coding needs standard; no backend has it, premium serves."""
    doc = await explain(
        category_rule, "auto", "Write a Python function that reverses a linked list."
    )
    assert doc["category"] == "coding"
    assert doc["response_headers"]["x-routeiq-needed-tier"] == "standard"
    assert doc["response_headers"]["x-routeiq-tier"] == "premium"
    assert doc["why"].startswith("profile auto: category coding needs tier standard")
    assert "no backend of this config has tier standard" in doc["why"]


QUALITY = re.compile(r"need=(\d\.\d{3}); eco<(\d\.\d{3}); premium>=(\d\.\d{3}); rule=(\w+)")


async def test_auto_takes_the_learned_rules_tier_and_names_the_bar(demo: Snapshot) -> None:
    """The demo config's ``auto`` is the learned cost-quality rule: the needed tier is the
    cheapest whose bar the predicted need clears, and the header, the verdict and the words
    agree. Pinned: this fixed prompt needs premium. The embedder and the need model are
    deterministic (need 0.278 in every run here), and the premium bar calibrated from
    ``premiumShare: 0.3`` is 0.220, a margin as wide as the whole eco-to-premium gap."""
    doc = await explain(demo, "auto", "Write a Python function that merges two sorted lists.")
    headers, verdict = doc["response_headers"], doc["classification"]["cost_quality"]
    shown = QUALITY.fullmatch(headers["x-routeiq-quality"])
    assert shown is not None, headers
    need, bars = verdict["need"], verdict["bars"]
    assert (float(shown[1]), float(shown[2]), float(shown[3])) == pytest.approx(
        (need, bars["eco"], bars["premium"]), abs=1e-3
    )
    assert bars["eco"] < bars["premium"]
    cleared = "premium" if need >= bars["premium"] else "eco" if need < bars["eco"] else "standard"
    assert shown[4] == verdict["tier"] == cleared == headers["x-routeiq-needed-tier"]
    assert doc["why"].startswith(f"profile auto: category coding; cost-quality {verdict['reason']}")
    assert "premium bar" in doc["why"]
    assert (doc["category"], cleared, headers["x-routeiq-tier"]) == ("coding", "premium", "premium")


async def test_chat_stays_on_eco_under_the_learned_rule(demo: Snapshot) -> None:
    """The default ceiling ``chat: eco`` caps small talk whatever its need; when it moved the
    rule's tier, the words name it."""
    doc = await explain(demo, "auto", "hi there!")
    assert doc["category"] == "chat"
    assert doc["response_headers"]["x-routeiq-needed-tier"] == "eco"
    assert doc["backend"] == "eco"
    if doc["classification"]["cost_quality"]["tier"] != "eco":
        assert "signal rule category chat->ceiling eco; needs tier eco" in doc["why"]


async def test_eco_is_served_by_eco_and_the_tier_header_says_so(category_rule: Snapshot) -> None:
    """Under the category rule ``eco`` caps the tier at eco, a reasoning prompt included."""
    doc = await explain(category_rule, "eco", "Prove that there are infinitely many primes.")
    assert doc["backend"] == "eco"
    assert doc["response_headers"]["x-routeiq-tier"] == "eco"


async def test_eco_is_a_cheaper_point_of_the_learned_rule(demo: Snapshot) -> None:
    """Under the learned rule ``eco`` is a point on the same curve (5% premium, 70% eco):
    higher bars than ``auto``'s. No default signal rule lifts a reasoning prompt past
    the rule's tier (the need model weighs the markers; a fixed lift would let any
    prompt buy premium past the share)."""
    text = "Prove that there are infinitely many primes."
    eco, auto = await explain(demo, "eco", text), await explain(demo, "auto", text)
    eco_q, auto_q = (d["classification"]["cost_quality"] for d in (eco, auto))
    assert (eco_q["profile"], auto_q["profile"]) == ("eco", "auto")
    assert eco_q["need"] == auto_q["need"]
    assert eco_q["bars"]["premium"] > auto_q["bars"]["premium"]
    assert eco_q["bars"]["eco"] > auto_q["bars"]["eco"]
    assert eco["response_headers"]["x-routeiq-needed-tier"] == eco["tier"]
    assert "reasoning_markers" not in eco["why"]
    assert eco["tier"] == eco_q["tier"]


async def test_profile_header_with_auto(demo: Snapshot) -> None:
    doc = await explain(demo, "auto", **{"x-routeiq-profile": "reasoning"})
    assert (doc["profile"], doc["upstream_model"]) == ("reasoning", "o3-2025-04-16")


async def test_why_names_the_policy_note(demo: Snapshot) -> None:
    doc = await explain(demo, "auto", "Refund card 4111 1111 1111 1111 and close the ticket.")
    assert doc["backend"] == "local"
    assert "detectors found payment_card=1" in doc["why"]
    assert "kept in-cluster" in doc["why"]
    assert "eco (not in-cluster)" in doc["why"]


async def test_why_of_a_refusal(demo: Snapshot) -> None:
    doc = await explain(demo, "gpt-9")
    assert doc["why"].startswith("refused 404 model_not_found")
    bad = await explain_request(demo, b"{", {})
    assert bad["why"].startswith("refused before deciding: 400")


def test_reasoning_models_without_the_capability_are_refused(tmp_path: Path) -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    doc["spec"]["backends"][1]["capabilities"] = ["tools", "json"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="model 'o3' is marked reasoning"):
        build_snapshot(path, with_policy=False, with_router=False)


def test_reasoning_without_a_marked_model_takes_the_first(tmp_path: Path) -> None:
    doc = yaml.safe_load(CONFIG.read_text())
    doc["spec"]["backends"][1]["models"] = ["gpt-4o", "o3"]
    del doc["spec"]["policy"], doc["spec"]["identity"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    snapshot = build_snapshot(path, with_router=False)
    assert resolve(snapshot, "reasoning", {}).upstream_models["premium"] == "gpt-4o"
    snapshot.close()


async def test_policy_max_tier_caps_what_the_learned_rule_asks(demo: Snapshot) -> None:
    """The learned rule needs premium for a maths prompt; team ``support`` (``max_tier:
    eco`` in the shipped policy data) still gets eco, and the decision says both."""
    text = "Find all real x such that x^4 - 5x^2 + 4 = 0, and prove there are no others."
    research = await explain(demo, "auto", text, authorization="Bearer sk-demo-research")
    assert research["classification"]["cost_quality"]["tier"] == "premium"
    assert research["backend"] == "premium"
    support = await explain(demo, "auto", text, authorization="Bearer sk-demo-support")
    assert support["classification"]["cost_quality"]["tier"] == "premium"
    assert support["response_headers"]["x-routeiq-needed-tier"] == "premium"
    assert support["backend"] == "eco" and support["tier"] == "eco"
    assert "capped at tier 'eco'" in support["why"]
