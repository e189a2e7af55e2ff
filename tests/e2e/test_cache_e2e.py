"""The answer cache through the real Envoy, with the official ``openai`` client.

A repeat is answered by RouteIQ (``ImmediateResponse``) without reaching a backend,
buffered and streamed, exact and by meaning; tenants never see each other's answers;
the client's ``cache-control`` opt-out and the tool bypass hold; a Redis store is
shared by two replicas, and a dead Redis costs nothing but the cache.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.test_state_e2e import scrape
from tests.fixtures.configs import write_config
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.stack import REPO, Backends, EnvoyStack, envoy_for, routeiq_server

pytestmark = pytest.mark.e2e

ENVOY = REPO / "envoy" / "routeiq-fail-closed.yaml"
CACHE = {"enabled": True, "semantic": {"enabled": True, "threshold": 0.92}}
MODEL = "gpt-4o-mini"  # served by the eco demo backend (cluster demo_eco)


def client(stack: EnvoyStack, team: str = "support") -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=f"sk-demo-{team}", max_retries=0)


def ask(c: openai.OpenAI, text: str, **extra: Any) -> tuple[dict[str, str], Any]:
    """One buffered chat completion at temperature 0: (response headers, completion)."""
    raw = c.chat.completions.with_raw_response.create(
        model=extra.pop("model", MODEL),
        messages=[{"role": "user", "content": text}],
        temperature=0,
        **extra,
    )
    return dict(raw.headers), raw.parse()


def ask_stream(c: openai.OpenAI, text: str, **extra: Any) -> tuple[dict[str, str], list[Any]]:
    """One streamed chat completion at temperature 0: (response headers, chunks)."""
    with c.chat.completions.with_streaming_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": text}],
        temperature=0,
        stream=True,
        **extra,
    ) as raw:
        return dict(raw.headers), list(raw.parse())


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def reached(backends: Backends, text: str) -> int:
    """How many requests carrying ``text`` the eco backend received."""
    return sum(
        1
        for r in backends.received("demo_eco")
        if any(m.get("content") == text for m in r["body"].get("messages", []))
    )


@pytest.fixture(scope="module")
def cached(
    workdir: Path, backends: Backends, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EnvoyStack, int]]:
    """Envoy and one RouteIQ with a memory cache; yields (envoy, RouteIQ admin port)."""
    from extproc.demo.processes import free_port

    config = write_config(tmp_path_factory.mktemp("cache") / "c.yaml", cache=CACHE)
    admin = free_port()
    with routeiq_server(config, workdir, {"ROUTEIQ_ADMIN_PORT": str(admin)}) as (_, port):
        stack = envoy_for(ENVOY, workdir, port, backends)
        try:
            yield stack, admin
        finally:
            stack.envoy.stop()


def test_miss_then_hit_with_identical_content(
    cached: tuple[EnvoyStack, int], backends: Backends
) -> None:
    stack, admin = cached
    c = client(stack)
    text = "How many moons does Mars have?"
    first_headers, first = ask(c, text)
    second_headers, second = ask(c, text)
    assert first_headers["x-routeiq-cache"] == "miss"
    assert second_headers["x-routeiq-cache"] == "hit"
    assert second_headers["x-routeiq-cache-kind"] == "exact"
    assert second_headers["x-routeiq-cache-similarity"] == "1.0000"
    assert second.id == first.id  # the stored completion itself
    assert second.choices[0].message.content == first.choices[0].message.content
    assert second.usage is not None and second.usage.total_tokens == 22
    assert reached(backends, text) == 1
    assert scrape(admin, "routeiq_cache_hits_total") >= 1


def test_streamed_miss_is_stored_and_replayed_as_a_stream(
    cached: tuple[EnvoyStack, int], backends: Backends
) -> None:
    stack, _ = cached
    c = client(stack)
    text = "Name three primary colours."
    headers, chunks = ask_stream(c, text)
    assert headers["x-routeiq-cache"] == "miss"
    original = text_of(chunks)
    assert original.endswith("Name three primary colours.")
    headers, replayed = ask_stream(c, text, stream_options={"include_usage": True})
    assert headers["x-routeiq-cache"] == "hit"
    assert headers["content-type"].startswith("text/event-stream")
    assert text_of(replayed) == original
    assert replayed[-1].choices == [] and replayed[-1].usage is not None
    assert [ch.choices[0].finish_reason for ch in replayed if ch.choices][-1] == "stop"
    _, plain = ask_stream(c, text)  # no include_usage: no usage chunk
    assert all(ch.choices for ch in plain) and text_of(plain) == original
    _, buffered = ask(c, text)  # the same entry, as JSON
    assert buffered.choices[0].message.content == original
    assert reached(backends, text) == 1


def test_paraphrase_hits_and_an_unrelated_prompt_misses(cached: tuple[EnvoyStack, int]) -> None:
    stack, _ = cached
    c = client(stack)
    _, first = ask(c, "How many days are there in a leap year?")
    headers, again = ask(c, "How many days does a leap year have?")
    assert headers["x-routeiq-cache"] == "hit"
    assert headers["x-routeiq-cache-kind"] == "semantic"
    assert 0.92 <= float(headers["x-routeiq-cache-similarity"]) < 1.0
    assert again.id == first.id
    headers, other = ask(c, "How do I bake sourdough bread at home?")
    assert headers["x-routeiq-cache"] == "miss" and other.id != first.id
    headers, _ = ask(c, "How many days are there in 3 leap years?")  # other literals
    assert headers["x-routeiq-cache"] == "miss"


def test_classified_profile_requests_hit_too(cached: tuple[EnvoyStack, int]) -> None:
    stack, _ = cached
    c = client(stack)
    # eco classifies like auto (the cache reuses that embedding) and stays on demo backends.
    _, first = ask(c, "Give me a synonym for happy.", model="eco")
    headers, second = ask(c, "Give me a synonym for happy.", model="eco")
    assert headers["x-routeiq-cache"] == "hit" and second.id == first.id
    headers, _ = ask(c, "Give me a synonym for happy.")  # another model: another entry
    assert headers["x-routeiq-cache"] == "miss"


def test_tenants_are_isolated(cached: tuple[EnvoyStack, int], backends: Backends) -> None:
    stack, _ = cached
    text = "What is the boiling point of ethanol?"
    _, support = ask(client(stack, "support"), text)
    headers, research = ask(client(stack, "research"), text)
    assert headers["x-routeiq-cache"] == "miss" and research.id != support.id
    headers, _ = ask(client(stack, "research"), text)
    assert headers["x-routeiq-cache"] == "hit"
    anonymous = openai.OpenAI(base_url=stack.base_url, api_key="unissued", max_retries=0)
    raw = anonymous.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": text}], temperature=0
    )
    # An unissued key names nobody but its holder: its own partition, never a team's.
    assert raw.headers["x-routeiq-cache"] == "miss"
    assert reached(backends, text) == 3


def test_client_opt_out_and_temperature(cached: tuple[EnvoyStack, int], backends: Backends) -> None:
    stack, _ = cached
    c = client(stack)
    text = "Spell 'necessary' backwards."
    no_store = {"extra_headers": {"cache-control": "no-store"}}
    headers, _ = ask(c, text, **no_store)
    assert headers["x-routeiq-cache"] == "bypass"
    headers, first = ask(c, text)  # nothing was stored by the opted-out request
    assert headers["x-routeiq-cache"] == "miss"
    headers, _ = ask(c, text, **no_store)
    assert headers["x-routeiq-cache"] == "bypass"
    headers, fresh = ask(c, text, extra_headers={"cache-control": "no-cache"})
    assert headers["x-routeiq-cache"] == "miss" and fresh.id != first.id
    headers, again = ask(c, text)
    assert headers["x-routeiq-cache"] == "hit" and again.id == fresh.id  # refreshed
    raw = c.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": text}]
    )  # no temperature: OpenAI's default 1 samples, above maxTemperature 0
    assert raw.headers["x-routeiq-cache"] == "bypass"
    assert reached(backends, text) == 5


def test_tools_bypass_the_cache(cached: tuple[EnvoyStack, int], backends: Backends) -> None:
    stack, _ = cached
    c = client(stack)
    text = "What is the weather in Oslo?"
    tools = [
        {
            "type": "function",
            "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    for _ in range(2):
        headers, _ = ask(c, text, tools=tools)
        assert headers["x-routeiq-cache"] == "bypass"
    assert reached(backends, text) == 2


# -- Redis: shared by replicas, and a dead Redis costs only the cache ------------------


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    workdir: Path,
    backends: Backends,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[EnvoyStack], list[int]]]:
    """Two RouteIQ replicas on one Redis cache, each behind its own Envoy (so a test
    picks the replica); yields the Envoys and the replicas' admin ports."""
    from extproc.demo.processes import free_port

    config = write_config(
        tmp_path_factory.mktemp("cache-redis") / "c.yaml", cache={**CACHE, "store": "redis"}
    )
    prefix = f"e2e-{uuid.uuid4().hex[:6]}:"
    with ExitStack() as stack:
        envoys, admins = [], []
        for _ in range(2):
            admin = free_port()
            env = {
                "ROUTEIQ_REDIS_URL": redis_server.url,
                "ROUTEIQ_REDIS_TIMEOUT_MS": "100",
                "ROUTEIQ_ADMIN_PORT": str(admin),
                "ROUTEIQ_REDIS_PREFIX": prefix,
            }
            port = stack.enter_context(routeiq_server(config, workdir, env))[1]
            envoy = envoy_for(ENVOY, workdir, port, backends)
            stack.callback(envoy.envoy.stop)
            envoys.append(envoy)
            admins.append(admin)
        yield envoys, admins


def test_redis_entries_are_shared_by_replicas(
    replicas: tuple[list[EnvoyStack], list[int]], backends: Backends
) -> None:
    (one, two), _ = replicas
    text = "What is the chemical formula of table salt?"
    headers, first = ask(client(one), text)
    assert headers["x-routeiq-cache"] == "miss"
    headers, second = ask(client(two), text)  # the other replica
    assert headers["x-routeiq-cache"] == "hit" and second.id == first.id
    _, streamed = ask_stream(client(two), "How many days are there in a leap year?")
    headers, replayed = ask_stream(client(one), "How many days does a leap year have?")
    assert headers["x-routeiq-cache"] == "hit"
    assert headers["x-routeiq-cache-kind"] == "semantic"
    assert text_of(replayed) == text_of(streamed)
    assert reached(backends, text) == 1


def test_requests_are_served_while_redis_is_down(
    replicas: tuple[list[EnvoyStack], list[int]], redis_server: RedisServer
) -> None:
    (one, _), (admin, _) = replicas
    c = client(one)
    redis_server.kill()
    try:
        for i in range(3):
            headers, completion = ask(c, f"Redis is down, question {i}?")
            assert headers["x-routeiq-cache"] == "miss"
            assert completion.choices[0].message.content
        headers, _ = ask(c, "Redis is down, question 0?")
        assert headers["x-routeiq-cache"] == "miss"  # nothing could be stored
        assert scrape(admin, "routeiq_cache_outages_total") >= 1
    finally:
        redis_server.restart()
    text = "Redis is back, is the cache?"
    for _ in range(20):  # the store is retried about once a second
        headers, _ = ask(c, text)
        if headers["x-routeiq-cache"] == "hit":
            break
        time.sleep(0.3)
    assert headers["x-routeiq-cache"] == "hit"
