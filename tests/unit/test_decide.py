"""decide() as plain Python: parsed request + snapshot in, immutable Decision out."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  defaultBackend: cheap
  backends:
    - name: cheap
      cluster: c_cheap
      models: [small-model]
      tier: eco
      cost: {inputPerMTok: 0.1, outputPerMTok: 0.4}
      contextWindow: 4000
      capabilities: [json]
    - name: mid
      cluster: c_mid
      models: [mid-model, shared]
      tier: standard
      cost: {inputPerMTok: 1, outputPerMTok: 2}
      capabilities: [tools, json]
    - name: strong
      cluster: c_strong
      models: [{name: big-model, upstream: vendor/big-model-2025}, shared]
      tier: premium
      cost: {inputPerMTok: 5, outputPerMTok: 15}
      capabilities: [tools, json, vision, reasoning]
    - name: freebie
      cluster: c_free
      models: [free-model]
      tier: free
      contextWindow: 2000
      capabilities: []
  aliases: {big: big-model}
"""


@pytest.fixture
def snapshot(tmp_path: Path) -> Snapshot:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG)
    return build_snapshot(path, with_router=False)


def req(body: dict[str, object], headers: dict[str, str] | None = None) -> ParsedRequest:
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return parse_request(
        Endpoint.CHAT_COMPLETIONS,
        "POST",
        "/v1/chat/completions",
        headers or {},
        json.dumps(body).encode(),
    )


async def test_explicit_model_routes_to_its_backend(snapshot: Snapshot) -> None:
    d = await decide(req({"model": "small-model"}), snapshot)
    assert (d.outcome, d.backend, d.cluster, d.upstream_model) == (
        Outcome.ROUTED,
        "cheap",
        "c_cheap",
        "small-model",
    )
    assert not d.rewrite_body
    assert ("x-routeiq-backend", "cheap") in d.upstream_headers
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.backend = "x"  # type: ignore[misc]


async def test_alias_and_upstream_name_rewrite(snapshot: Snapshot) -> None:
    d = await decide(req({"model": "big"}), snapshot)
    assert (d.backend, d.upstream_model, d.rewrite_body) == (
        "strong",
        "vendor/big-model-2025",
        True,
    )


async def test_model_served_twice_prefers_stronger_backend(snapshot: Snapshot) -> None:
    d = await decide(req({"model": "shared"}), snapshot)
    assert d.backend == "strong" and d.fallbacks == ("mid",)


async def test_unknown_model_is_404(snapshot: Snapshot) -> None:
    d = await decide(req({"model": "gpt-9"}), snapshot)
    assert d.outcome is Outcome.DENIED and d.error is not None
    assert (d.error.status, d.error.code) == (404, "model_not_found")


@pytest.mark.parametrize(
    ("model", "headers", "backend"),
    [
        ("routeiq/premium", {}, "strong"),
        ("premium", {}, "strong"),
        ("eco", {}, "cheap"),
        ("routeiq/free", {}, "freebie"),
        ("auto", {"x-routeiq-profile": "eco"}, "cheap"),
        ("reasoning", {}, "strong"),
    ],
)
async def test_profiles(
    snapshot: Snapshot, model: str, headers: dict[str, str], backend: str
) -> None:
    d = await decide(req({"model": model}, headers), snapshot)
    assert d.backend == backend
    assert d.upstream_model == snapshot.backends[backend].default_model.upstream_name
    assert d.rewrite_body


async def test_capabilities_and_context_window_filter(snapshot: Snapshot) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    d = await decide(req({"model": "eco", "tools": tools}), snapshot)
    assert d.backend == "mid"  # cheap lacks tools
    assert "lacks tools" in d.explain["excluded"]["cheap"]

    long = [{"role": "user", "content": "x" * 20_000}]
    d = await decide(req({"model": "eco", "messages": long}), snapshot)
    assert d.backend == "mid"
    assert d.explain["excluded"]["cheap"].startswith("context window")


async def test_no_backend_fits_context_is_400(snapshot: Snapshot) -> None:
    d = await decide(
        req({"model": "free-model", "messages": [{"role": "user", "content": "x" * 9000}]}),
        snapshot,
    )
    assert d.error is not None
    assert (d.error.status, d.error.code) == (400, "context_length_exceeded")


async def test_missing_capability_for_explicit_model_is_400(snapshot: Snapshot) -> None:
    d = await decide(
        req({"model": "small-model", "tools": [{"type": "function", "function": {"name": "f"}}]}),
        snapshot,
    )
    assert d.error is not None and d.error.code == "unsupported_capability"


async def test_policy_sees_the_callers_limits(tmp_path: Path) -> None:
    """Limits from the YAML reach the policy input with their current levels."""
    from extproc.state import MemoryStateStore

    rego = tmp_path / "p.rego"
    rego.write_text(
        "package routeiq\n"
        'default decision := {"allowed": true}\n'
        'decision := {"allowed": false, "http_status": 429, "message": "low"} if {\n'
        '  input.routeiq.limits["team-req"].requests_remaining < 2\n'
        "}\n"
    )
    path = tmp_path / "c.yaml"
    path.write_text(
        CONFIG
        + "  policy: {engine: embedded, modules: [p.rego]}\n"
        + "  state:\n    limits:\n"
        + "      - {name: team-req, key: team, requestsPerWindow: 3, windowSeconds: 60}\n"
    )
    snapshot = build_snapshot(path, with_router=False)
    store = MemoryStateStore()
    try:
        outcomes = []
        for _ in range(3):
            d = await decide(req({"model": "small-model"}, {"x-team": "t"}), snapshot, state=store)
            outcomes.append(d.error.status if d.error else 200)
        # 3 left, 2 left (allowed, both consume), then 1 left: the policy refuses first.
        assert outcomes == [200, 200, 429]
    finally:
        snapshot.close()
        await store.aclose()
