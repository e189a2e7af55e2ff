"""Traffic-following bars (``costQuality.calibration.source: traffic``).

The share knob must hold on traffic unlike the reference set: a stream of long prompts,
all above the reference premium bar of the length model (``test_quality_rule``), must
still send about ``premiumShare`` of itself to premium once the window is warm, and a
whole batch scored at once (``routeiq score``) is calibrated on itself.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from extproc.routing import build_router
from extproc.routing.need_window import NeedWindow
from extproc.routing.scoring import as_traffic
from extproc.routing.spec import RoutingSpec

from .conftest import chat
from .test_quality_rule import length_need, models_dir, prompts, spec_of

__all__ = ["models_dir"]  # the module fixture, shared


def long_prompts(seed: int, n: int) -> list[str]:
    """Distinct prompts of 300-600 characters: every one above the reference premium bar."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "river", "stone", "cloud", "paper"]
    out = []
    for i in range(n):
        size = rng.randint(300, 600)
        out.append(f"{i} " + " ".join(rng.choice(words) for _ in range(size // 5))[:size])
    return out


def test_window_quantiles_are_numpys_over_the_last_size_needs() -> None:
    rng = np.random.default_rng(5)
    window = NeedWindow(size=50, warmup=20)
    assert np.isnan(window.quantile(0.5)) and not window.warm
    seen = rng.random(130)
    for i, need in enumerate(seen):
        window.observe(float(need))
        assert window.warm == (i + 1 >= 20)
    assert len(window) == 50
    for bad in (float("nan"), float("inf"), float("-inf")):
        window.observe(bad)
    for q in (0.0, 0.1, 0.5, 0.7, 0.95, 1.0):
        assert window.quantile(q) == pytest.approx(float(np.quantile(seen[-50:], q)))


def test_window_and_spec_validation() -> None:
    with pytest.raises(ValueError, match="warmup"):
        NeedWindow(size=10, warmup=11)
    with pytest.raises(ValidationError, match="exceeds its window"):
        RoutingSpec.model_validate({"costQuality": {"calibration": {"window": 50, "warmup": 60}}})
    spec = RoutingSpec.model_validate({"costQuality": {}}).cost_quality
    assert spec is not None and spec.calibration.source == "traffic"


def test_bars_follow_the_traffic_once_warm(models_dir: Path) -> None:
    """Reference bars until ``warmup`` prompts are seen, then the window's: the share holds
    on traffic the reference bars would send entirely to premium."""
    spec = spec_of(models_dir, premiumShare=0.3, calibration={"window": 100, "warmup": 60})
    router = build_router(spec, models_dir)
    assert router.quality is not None and router.quality.window is not None
    reference_bar = router.quality.bars["auto"].premium
    texts = long_prompts(1, 260)
    assert min(length_need(t) for t in texts) > reference_bar
    results = [router.classify(chat(t)) for t in texts]
    early = results[:59]
    assert {c.tier for c in early} == {"premium"}
    assert {c.quality.calibration for c in early if c.quality} == {"reference"}
    late = results[160:]
    assert {c.quality.calibration for c in late if c.quality} == {"traffic"}
    assert all(c.quality.reason.endswith("(bars from recent traffic)") for c in late if c.quality)
    assert early[0].quality is not None and "traffic" not in early[0].quality.reason
    share = sum(c.tier == "premium" for c in late) / len(late)
    assert 0.2 <= share <= 0.4, share
    q = late[-1].quality
    assert q is not None and q.bars["premium"] > reference_bar
    needs = [length_need(t) for t in texts[-100:]]
    assert q.bars["premium"] == pytest.approx(float(np.quantile(needs, 0.7)), abs=1e-4)


def test_a_repeated_prompt_is_counted_once(models_dir: Path) -> None:
    """A client resending one text (an agent loop, or an attempt to move the bars) adds
    one need to the window, not one per request."""
    router = build_router(spec_of(models_dir, premiumShare=0.3), models_dir)
    assert router.quality is not None and router.quality.window is not None
    for _ in range(30):
        router.classify(chat("the same question, over and over again"))
    assert len(router.quality.window) == 1


def test_reference_calibration_never_moves(models_dir: Path) -> None:
    spec = spec_of(models_dir, premiumShare=0.3, calibration={"source": "reference", "warmup": 10})
    router = build_router(spec, models_dir)
    assert router.quality is not None and router.quality.window is None
    tiers = [router.classify(chat(t)).tier for t in long_prompts(2, 40)]
    assert set(tiers) == {"premium"}


def test_a_batch_is_its_own_traffic_and_retier_equals_reclassifying(models_dir: Path) -> None:
    """``as_traffic`` (``score``, ``eval``) calibrates a batch of at least ``warmup`` on its
    own needs; with reference bars, re-tiering equals classifying again under a moved knob."""
    requests = [chat(t) for t in long_prompts(3, 250)]
    traffic = build_router(spec_of(models_dir, premiumShare=0.3), models_dir)
    settled = as_traffic(traffic, traffic.classify_batch(requests))
    assert sum(c.tier == "premium" for c in settled) / 250 == pytest.approx(0.3, abs=0.01)
    assert traffic.quality is not None and traffic.quality.window is not None
    assert len(traffic.quality.window) == 0  # batches never feed the serving window
    fixed = build_router(
        spec_of(models_dir, premiumShare=0.3, calibration={"source": "reference"}), models_dir
    )
    base = fixed.classify_batch(requests)
    assert {c.tier for c in as_traffic(fixed, base)} == {"premium"}
    mixed = [chat(p) for p in prompts(random.Random(4), 120)]
    base = fixed.classify_batch(mixed)
    moved = fixed.with_knob(premium_share=0.6)
    again = moved.classify_batch(mixed)
    retiered = [moved.retier(c) for c in base]
    assert [c.tier for c in retiered] == [c.tier for c in again]
    assert [c.rules for c in retiered] == [c.rules for c in again]


def test_score_holds_the_share_on_prompts_unlike_the_reference(tmp_path: Path) -> None:
    """The shipped config: 240 maths word problems (the reference bars send most such
    text to premium) scored at ``--premium-share 0.3`` get 20-40% premium."""
    from extproc.routing.cli import main

    rng = random.Random(7)
    names = ["Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana"]
    things = ["apples", "marbles", "tickets", "books", "coins", "stamps"]
    lines = []
    for i in range(240):
        a, b, c = rng.randint(2, 90), rng.randint(2, 40), rng.randint(2, 9)
        who, what = rng.choice(names), rng.choice(things)
        steps = rng.randint(1, 4)
        extra = " Then she buys {c} times as many again and gives away half." * steps
        text = (
            f"{who} has {a} {what}. She gives {b} to a friend and then finds {c} more. "
            f"{extra.format(c=c)} How many {what} does {who} have now? Show your work."
        )
        lines.append(json.dumps({"id": i, "prompt": text}) + "\n")
    src, out = tmp_path / "maths.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(lines))
    assert main(["score", "--input", str(src), "--output", str(out), "--premium-share", "0.3"]) == 0
    tiers = [json.loads(x)["tier"] for x in out.read_text().splitlines()]
    assert 0.2 <= tiers.count("premium") / len(tiers) <= 0.4, tiers.count("premium")


def test_reasoning_markers_lift_only_under_the_category_rule() -> None:
    """Default signal rules: the category rule lifts "step by step" prompts to premium;
    the learned rule does not (the phrase alone would buy premium past the share), and
    rules the operator sets apply under either."""
    category = RoutingSpec.model_validate({})
    learned = RoutingSpec.model_validate({"costQuality": {}})
    assert [r.signal for r in category.signal_rules] == ["agentic", "reasoning_markers"]
    assert [r.signal for r in learned.signal_rules] == ["agentic"]
    explicit = RoutingSpec.model_validate(
        {
            "costQuality": {},
            "signalRules": [{"signal": "reasoning_markers", "atLeast": 1, "minTier": "premium"}],
        }
    )
    assert [r.signal for r in explicit.signal_rules] == ["reasoning_markers"]


def test_a_reload_keeps_the_window_while_its_needs_still_apply(
    models_dir: Path, tmp_path: Path
) -> None:
    """``Runtime.swap`` (every reload) hands the traffic window on when the new router
    has the same need model, embedded text and window; anything else starts afresh."""
    from extproc.config.settings import Settings
    from extproc.config.snapshot import build_snapshot
    from extproc.runtime import Runtime

    first = build_router(spec_of(models_dir, premiumShare=0.3), models_dir)
    assert first.quality is not None and first.quality.window is not None
    for text in long_prompts(5, 12):
        first.classify(chat(text))
    same = build_router(spec_of(models_dir, premiumShare=0.5), models_dir).continuing(first)
    assert same.quality is not None and same.quality.window is first.quality.window
    resized = build_router(
        spec_of(models_dir, premiumShare=0.3, calibration={"window": 500}), models_dir
    ).continuing(first)
    assert resized.quality is not None and resized.quality.window is not first.quality.window
    other_text = RoutingSpec.model_validate(
        {**spec_of(models_dir).model_dump(by_alias=True), "embedding": {"maxTokens": 64}}
    )
    moved = build_router(other_text, models_dir).continuing(first)
    assert moved.quality is not None and moved.quality.window is not first.quality.window

    config = tmp_path / "routeiq.yaml"
    config.write_text(
        "apiVersion: routeiq.dev/v1alpha1\nkind: RoutingConfig\nspec:\n"
        "  backends:\n    - {name: a, cluster: a, tier: standard, models: [m]}\n"
        f"  routing:\n    modelsDir: {models_dir}\n    scorer: null\n    costQuality: {{}}\n"
    )
    runtime = Runtime(settings=Settings(), snapshot=build_snapshot(config))
    router = runtime.snapshot.router
    assert router is not None and router.quality is not None
    assert router.quality.window is not None
    router.classify(chat("one prompt before the reload"))
    runtime.swap(build_snapshot(config))
    reloaded = runtime.snapshot.router
    assert reloaded is not None and reloaded is not router and reloaded.quality is not None
    assert reloaded.quality.window is router.quality.window and len(reloaded.quality.window) == 1
