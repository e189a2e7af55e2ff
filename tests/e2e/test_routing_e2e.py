"""ML routing through the real Envoy: auto and profiles land on different backends,
with the explanation headers the client can read."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fixtures.stack import LITELLM_KEY, EnvoyStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def oai(envoy: EnvoyStack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=envoy.base_url, api_key=LITELLM_KEY, max_retries=0) as c:
        yield c


def ask(oai: openai.OpenAI, text: str, model: str = "auto", **kw: object) -> dict[str, str]:
    raw = oai.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": text}],
        **kw,  # type: ignore[arg-type]
    )
    raw.parse()
    return dict(raw.headers)


def test_coding_and_chitchat_land_on_different_backends(oai: openai.OpenAI) -> None:
    chit = ask(oai, "hey! how was your weekend?")
    code = ask(oai, "Write a Python function that merges two sorted lists, with unit tests.")
    assert chit["x-routeiq-category"] == "chat"
    assert code["x-routeiq-category"] == "coding"
    assert chit["x-routeiq-backend"] != code["x-routeiq-backend"]
    assert chit["x-routeiq-backend"] == "eco"  # the cheapest backend of the tier chat needs
    for headers in (chit, code):
        assert headers["x-routeiq-routed-profile"] == "auto"
        assert headers["x-routeiq-tier"] in ("free", "eco", "standard", "premium")


def test_profiles_by_model_name_and_header(oai: openai.OpenAI) -> None:
    hard = "Write a Python function that merges two sorted lists, with unit tests."
    assert ask(oai, hard, "routeiq/eco")["x-routeiq-backend"] == "eco"
    assert ask(oai, "hi", "premium")["x-routeiq-backend"] == "premium"
    assert ask(oai, hard, extra_headers={"x-routeiq-profile": "eco"})["x-routeiq-backend"] == "eco"


def test_tools_need_a_backend_with_tools(oai: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    headers = ask(oai, "What time is it in Paris?", "routeiq/free", tools=tools)
    assert headers["x-routeiq-backend"] != "local"  # local (free) has no tools capability


def test_explicit_model_bypasses_classification(oai: openai.OpenAI) -> None:
    headers = ask(oai, "Write a Python quicksort.", "gpt-4o-mini")
    assert headers["x-routeiq-backend"] == "eco"
    assert "x-routeiq-category" not in headers
