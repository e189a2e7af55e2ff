"""Third-party plug-ins load by name through entry points; built-in rankers behave."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.errors import ConfigError
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.routing.rankers import ENTRY_POINT_GROUP, load_ranker
from extproc.routing.strategies import ENTRY_POINT_GROUP as STRATEGY_GROUP

EXAMPLE = Path(__file__).parent / "example_plugin"

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  ranker: {ranker}
  backends:
    - name: cloud-premium
      cluster: c1
      models: [m]
      tier: premium
      cost: {{inputPerMTok: 5, outputPerMTok: 15}}
    - name: cloud-standard
      cluster: c2
      models: [m]
      tier: standard
      cost: {{inputPerMTok: 1, outputPerMTok: 2}}
    - name: onprem-standard
      cluster: c3
      models: [m]
      tier: standard
      inCluster: true
      cost: {{inputPerMTok: 3, outputPerMTok: 3}}
"""


def install_example(site: Path) -> None:
    """What ``pip install tests/plugins/example_plugin`` leaves on sys.path."""
    shutil.copy(EXAMPLE / "routeiq_example_plugin.py", site)
    info = site / "routeiq_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: routeiq-example-plugin\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ngreenest = routeiq_example_plugin:greenest\n\n"
        f"[{STRATEGY_GROUP}]\nexample-mean = routeiq_example_plugin:MeanStrategy\n"
    )


def request(body: dict[str, object]) -> ParsedRequest:
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    data = json.dumps(body).encode()
    return parse_request(Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, data)


async def routed_to(tmp_path: Path, ranker: str, body: dict[str, object]) -> tuple[str, ...]:
    path = tmp_path / f"{ranker}.yaml"
    path.write_text(CONFIG.format(ranker=ranker))
    snapshot = build_snapshot(path, with_router=False)
    d = await decide(request(body), snapshot)
    assert d.backend is not None
    return (d.backend, *d.fallbacks)


async def test_a_ranker_plugin_is_named_in_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_example(site)
    monkeypatch.syspath_prepend(str(site))
    order = await routed_to(tmp_path, "greenest", {"model": "m"})
    assert order == ("onprem-standard", "cloud-premium", "cloud-standard")


async def test_builtin_rankers(tmp_path: Path) -> None:
    # Explicit model: the strongest server first; among a tier, the cheaper one.
    assert await routed_to(tmp_path, "tier-cost", {"model": "m"}) == (
        "cloud-premium",
        "cloud-standard",
        "onprem-standard",
    )
    # Cheapest at or above the needed tier (premium for an explicit model), then the rest.
    assert await routed_to(tmp_path, "cost", {"model": "m"}) == (
        "cloud-premium",
        "cloud-standard",
        "onprem-standard",
    )
    # The eco profile needs at most eco: every backend meets it, the cheapest wins.
    assert (await routed_to(tmp_path, "cost", {"model": "eco"}))[0] == "cloud-standard"


async def test_expected_cost_of_this_request_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(ranker="tier-cost"))
    snapshot = build_snapshot(path, with_router=False)
    d = await decide(request({"model": "m", "max_tokens": 1000}), snapshot)
    prompt = d.prompt_tokens
    # cloud-premium: prompt at $5/M in, 1000 tokens at $15/M out.
    assert d.expected_costs["cloud-premium"] == pytest.approx((prompt * 5 + 1000 * 15) / 1e6)
    assert [c["backend"] for c in d.explain["candidates"]] == [
        "cloud-premium",
        "cloud-standard",
        "onprem-standard",
    ]


def test_an_unknown_ranker_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown ranker 'nope'.*cost.*tier-cost"):
        load_ranker("nope")


def test_eco_caps_category_tiers_but_keeps_the_learned_rules_tier() -> None:
    from extproc.config.schema import Tier
    from extproc.routing.profiles import Profile
    from extproc.routing.selector import target_tier

    assert target_tier(Profile.ECO, Tier.PREMIUM) is Tier.ECO
    assert target_tier(Profile.ECO, Tier.PREMIUM, learned=True) is Tier.PREMIUM
    assert target_tier(Profile.AUTO, None) is Tier.STANDARD
    assert target_tier(Profile.PREMIUM, Tier.ECO, learned=True) is Tier.PREMIUM


async def test_a_strategy_plugin_trains_loads_and_classifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One module plus config entries: the example strategy is trained with
    ``routeiq``'s own ``fit``/``save_model``, then served by a config that names it."""
    from extproc.routing.artefacts import sha256_file
    from extproc.routing.strategies import get_strategy, known_strategies
    from extproc.routing.train import fit, save_model

    site = tmp_path / "site"
    site.mkdir()
    install_example(site)
    monkeypatch.syspath_prepend(str(site))
    assert "example-mean" in known_strategies()
    repo = Path(__file__).resolve().parents[2]
    models = tmp_path / "models"
    models.mkdir()
    (models / "embedder").symlink_to(repo / "models" / "embedder")
    snapshot_for_embedder = build_snapshot(repo / "config" / "routeiq.yaml", with_policy=False)
    assert snapshot_for_embedder.router is not None
    embedder = snapshot_for_embedder.router.embedder
    texts = {
        "coding": ["Write a Python function to reverse a list", "Fix this SQL join query"],
        "chat": ["hi, how are you today?", "good morning! how was your weekend?"],
    }
    rows = [(t, label) for label, ts in texts.items() for t in ts]
    x = embedder.embed_many([t for t, _ in rows])
    classes, arrays, params = fit("example-mean", x, [label for _, label in rows])
    save_model(
        models / "mean",
        "example-mean",
        classes,
        arrays,
        params,
        kind="category",
        embedder_sha256=sha256_file(repo / "models" / "embedder" / "model_int8.onnx"),
        data={"rows": len(rows)},
        metrics={},
        recipe="tests/plugins/test_plugins.py",
    )
    assert get_strategy("example-mean").default_params["temperature"] == 0.1
    config = tmp_path / "c.yaml"
    config.write_text(
        "apiVersion: routeiq.dev/v1alpha1\nkind: RoutingConfig\nspec:\n"
        f"  routing: {{modelsDir: {models}, strategy: example-mean,"
        " artefacts: {example-mean: mean}, scorer: null}\n"
        "  backends:\n    - {name: small, cluster: c1, models: [m], tier: eco}\n"
        "    - {name: big, cluster: c2, models: [m], tier: standard}\n"
    )
    snapshot = build_snapshot(config)
    d = await decide(
        request(
            {
                "model": "auto",
                "messages": [
                    {"role": "user", "content": "Write a Rust function that parses a date"}
                ],
            }
        ),
        snapshot,
    )
    assert d.classification is not None
    assert (d.classification.strategy, d.category, d.backend) == ("example-mean", "coding", "big")
    snapshot.close()
    snapshot_for_embedder.close()
