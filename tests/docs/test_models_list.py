"""``GET /v1/models`` as documented in docs/routing.md: the config's models, aliases and
profiles, through the real Envoy, read by the official openai client."""

from __future__ import annotations

import json

import openai
import pytest

from extproc.api.models_list import models_reply
from extproc.config.snapshot import load_config
from tests.conftest import E2E_CONFIG
from tests.fixtures.stack import Backends, EnvoyStack

pytestmark = pytest.mark.e2e


def client(envoy: EnvoyStack) -> openai.OpenAI:
    return openai.OpenAI(base_url=envoy.base_url, api_key="sk-demo-research", max_retries=0)


def test_models_list_through_envoy(envoy: EnvoyStack, backends: Backends) -> None:
    before = {c: len(backends.received(c)) for c in backends.ports if c != "litellm"}
    models = {m.id: m for m in client(envoy).models.list()}
    kinds = {name: m.model_extra["routeiq"]["kind"] for name, m in models.items()}  # type: ignore[index]
    served = ["gpt-4o-mini", "gpt-4o", "o3", "llama-3.1-8b", "team-gpt"]
    assert {n: kinds[n] for n in served} == dict.fromkeys(served, "model")
    assert kinds["gpt4"] == "alias"
    profiles = ["auto", "eco", "standard", "premium", "free", "reasoning"]
    assert {p: kinds[p] for p in profiles} == dict.fromkeys(profiles, "profile")
    assert len(models) == len(served) + 1 + len(profiles)
    assert models["gpt-4o"].object == "model" and models["gpt-4o"].owned_by == "openai"
    after = {c: len(backends.received(c)) for c in before}
    assert after == before  # no backend was asked


def test_retrieve_one_model_and_an_unknown_one(envoy: EnvoyStack) -> None:
    c = client(envoy)
    o3 = c.models.retrieve("o3")
    assert o3.id == "o3" and o3.model_extra["routeiq"]["backends"] == ["premium"]  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as caught:
        c.models.retrieve("gpt-9")
    assert caught.value.code == "model_not_found"


def test_listing_is_the_config_and_spellings_agree() -> None:
    spec = load_config(E2E_CONFIG)[0].spec
    plain = models_reply(spec, "GET", "/v1/models")
    assert plain is not None and plain.status == 200
    for spelling in ("/V1/models/", "/v1//models?limit=5", "/v1/%6dodels"):
        same = models_reply(spec, "GET", spelling)
        assert same is not None and same.body == plain.body, spelling
    cased = models_reply(spec, "GET", "/V1/Models/llama-3.1-8b")
    assert cased is not None and json.loads(cased.body)["id"] == "llama-3.1-8b"
    assert models_reply(spec, "POST", "/v1/models") is None  # refused by the path rules
    assert models_reply(spec, "GET", "/v1/modelsx") is None
    assert models_reply(spec, "GET", "/other/models") is None
