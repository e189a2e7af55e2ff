"""Differential test: the shipped policies decide identically in regorus and in real OPA.

The embedded engine (regorus VM and interpreter) and the real OPA Go engine
(opa-golib-python-bindings, in process) evaluate the same 240 generated inputs over
four data variants; a slice also goes through the fixture OPA server and the remote
engine, so the HTTP path is covered too. Whole decision documents must be equal.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from opa_bindings import OpaEngine

from extproc.policy import PolicySpec, RemoteOpaEngine, build_policy_engine, load_bundle
from extproc.policy.embedded import build_embedded
from extproc.policy.input import probe_inputs
from tests.fixtures.opa_server import OpaServer
from tests.policy.conftest import REPO
from tests.policy.corpus import DATA_VARIANTS, inputs, with_data

PER_VARIANT = 60
QUERY = "data.routeiq.decision"


def _opa(bundle: Any) -> OpaEngine:
    engine = OpaEngine()
    for path, source in bundle.modules:
        engine.add_policy(path, source)
    engine.add_data(dict(bundle.data))
    return engine


@pytest.mark.parametrize("variant", range(len(DATA_VARIANTS)))
def test_embedded_matches_real_opa(variant: int) -> None:
    bundle = with_data(load_bundle(["policies"], ["policies/data"], REPO), DATA_VARIANTS[variant])
    engines = {
        kind: build_embedded(
            bundle,
            QUERY,
            probe_inputs(bundle.data),
            deny_status=403,
            dry_run=False,
            fail_open=False,
            evaluator=kind,
        )
        for kind in ("vm", "interpreter")
    }
    opa = _opa(bundle)
    outcomes: Counter[str] = Counter()
    try:
        for i, doc in enumerate(inputs(PER_VARIANT, seed=1000 + variant)):
            want = opa.eval_document(QUERY.removeprefix("data."), doc)
            for kind, engine in engines.items():
                got = engine.decide(doc)
                assert not got.engine_unavailable, (kind, i, got.reason)
                assert got.decision == want, f"{kind} differs from OPA on input {i}: {doc}"
            outcomes["allowed" if want["allowed"] else "denied"] += 1
            outcomes.update(want["rule_ids"])
    finally:
        opa.close()
        for engine in engines.values():
            engine.close()
    # the corpus really exercises the policies, not one branch of them
    assert outcomes["denied"] >= 5 or DATA_VARIANTS[variant].get("dry_run")
    assert outcomes["allowed"] >= 5
    assert outcomes["confidential-in-cluster"] >= 5
    assert outcomes["team-model-allowlist"] >= 5


async def test_remote_engine_matches_embedded(opa_server: OpaServer) -> None:
    embedded = build_policy_engine(
        PolicySpec(engine="embedded", modules=("policies",), data=("policies/data",)), REPO
    )
    remote = build_policy_engine(
        PolicySpec.model_validate({"engine": "opa", "opa": {"url": opa_server.url}}), REPO
    )
    assert isinstance(remote, RemoteOpaEngine)
    try:
        for doc in inputs(40, seed=7):
            local, far = await embedded.evaluate(doc), await remote.evaluate(doc)
            assert far.decision == local.decision
            assert far.allowed == local.allowed and far.rule_ids == local.rule_ids
    finally:
        embedded.close()
        await remote.aclose()
