"""Shared state through the real Envoy: two RouteIQ replicas on one real Redis.

Budgets hold exactly across replicas, affinity holds across replicas, a Redis outage
degrades the way the operator chose (and recovers), and streamed responses are
accounted without the client seeing anything it did not ask for.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import openai
import pytest
import redis

from extproc.demo.processes import free_port
from tests.fixtures.configs import write_config
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.stack import (
    LITELLM_KEY,
    REPO,
    TRUSTED_IDENTITY,
    Backends,
    EnvoyStack,
    envoy_for,
    routeiq_server,
)

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
STATE = {
    "limits": [
        {
            "name": "team-requests",
            "key": "team",
            "requestsPerWindow": 10,
            "windowSeconds": 600,
            "whenMissing": "skip",
        },
        {
            "name": "user-tokens",
            "key": "user",
            "tokensPerWindow": 1000,
            "windowSeconds": 600,
            "whenMissing": "skip",
        },
    ],
    "affinity": {"enabled": True, "ttlSeconds": 600},
}
CHITCHAT = "hey! how was your weekend?"
CODING = "Write a Python function that merges two sorted lists, with unit tests."


def chat(model: str, text: str, **extra: object) -> bytes:
    return json.dumps(
        {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    ).encode()


def scrape(admin_port: int, name: str) -> float:
    """One sample's value from the admin port's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} not in /metrics")


def redis_env(server: RedisServer, mode: str = "open") -> dict[str, str]:
    return {
        "ROUTEIQ_STATE_BACKEND": "redis",
        "ROUTEIQ_REDIS_URL": server.url,
        "ROUTEIQ_STATE_FAILURE_MODE": mode,
        "ROUTEIQ_REDIS_TIMEOUT_MS": "100",
    }


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        server.start()
        yield server


@pytest.fixture(scope="module")
def replicas(
    workdir: Path,
    backends: Backends,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EnvoyStack]:
    """One Envoy whose ext_proc cluster has two RouteIQ replicas (round robin)."""
    config = write_config(
        tmp_path_factory.mktemp("state") / "c.yaml", state=STATE, identity=TRUSTED_IDENTITY
    )
    with ExitStack() as stack:
        ports = [
            stack.enter_context(routeiq_server(config, workdir, redis_env(redis_server)))[1]
            for _ in range(2)
        ]
        envoy = envoy_for(
            REPO / "envoy" / "routeiq-fail-closed.yaml",
            workdir,
            ports,
            backends,
            trusted_identity=True,
        )
        stack.callback(envoy.envoy.stop)
        yield envoy


def test_budget_is_exact_across_replicas(replicas: EnvoyStack) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    body = chat("gpt-4o-mini", "hello")

    def one(_: int) -> int:
        return replicas.post(CHAT, body, {"x-team": team})[0]

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(one, range(30)))
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20
    status, headers, raw = replicas.post(CHAT, body, {"x-team": team})
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "10"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert json.loads(raw)["error"]["code"] == "rate_limit_exceeded"


def test_openai_client_sees_rate_limit_error(replicas: EnvoyStack) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    with openai.OpenAI(base_url=replicas.base_url, api_key=LITELLM_KEY, max_retries=0) as c:
        for _ in range(10):
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-team": team},
            )
        with pytest.raises(openai.RateLimitError):
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "x"}],
                extra_headers={"x-team": team},
            )


def test_affinity_holds_across_replicas(replicas: EnvoyStack) -> None:
    # Control: without a session, the coding prompt goes elsewhere than chit-chat.
    first = replicas.post(CHAT, chat("auto", CHITCHAT))[1]["x-routeiq-backend"]
    other = replicas.post(CHAT, chat("auto", CODING))[1]["x-routeiq-backend"]
    assert first != other
    session = {"x-session-id": uuid.uuid4().hex}
    landed = [
        replicas.post(CHAT, chat("auto", text), session)[1]["x-routeiq-backend"]
        for text in (CHITCHAT, CODING, CODING, CODING)
    ]  # alternating replicas
    assert landed == [first] * 4


def test_stream_is_accounted_and_client_sees_its_own_stream(replicas: EnvoyStack) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    messages = [{"role": "user", "content": "one two three four five six"}]
    with openai.OpenAI(base_url=replicas.base_url, api_key=LITELLM_KEY, max_retries=0) as c:
        for _ in range(3):  # 3 x (prompt + 900) > 1000: passes only if usage is reconciled
            times, chunks = [], []
            start = time.monotonic()
            for chunk in c.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                stream=True,
                max_tokens=900,
                user=user,  # type: ignore[arg-type]
            ):
                times.append(time.monotonic() - start)
                chunks.append(chunk)
            assert all(ch.choices for ch in chunks)  # the injected usage chunk was stripped
            assert all(ch.usage is None for ch in chunks)
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
            assert text.startswith("[eco/gpt-4o-mini] you said: one two")
            assert times[-1] - times[0] > 0.2  # incremental, not buffered
        # A client that asks for usage gets exactly that chunk.
        chunks = list(
            c.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                stream=True,
                max_tokens=10,
                user=user,  # type: ignore[arg-type]
                stream_options={"include_usage": True},
            )
        )
        assert chunks[-1].usage is not None and chunks[-1].choices == []


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_outage_and_recovery(
    workdir: Path, backends: Backends, tmp_path: Path, mode: str
) -> None:
    config = write_config(tmp_path / "c.yaml", state=STATE, identity=TRUSTED_IDENTITY)
    team = f"team-{uuid.uuid4().hex[:8]}"
    body = chat("gpt-4o-mini", "hello")
    admin = free_port()
    with RedisServer() as server:
        server.start()
        env = {**redis_env(server, mode), "ROUTEIQ_ADMIN_PORT": str(admin)}
        with routeiq_server(config, workdir, env) as (_, port):
            run_outage(server, port, admin, workdir, backends, mode, team, body)


def run_outage(
    server: RedisServer,
    port: int,
    admin: int,
    workdir: Path,
    backends: Backends,
    mode: str,
    team: str,
    body: bytes,
) -> None:
    """Kill Redis under load, check the failure mode and the metrics, restart it."""
    stack = envoy_for(
        REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends, trusted_identity=True
    )
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            started = time.monotonic()
            status = stack.post(CHAT, body)[0]  # no team: affinity keys only
            results.append((time.monotonic() - started, status))
            time.sleep(0.02)

    thread = threading.Thread(target=load)
    try:
        assert stack.post(CHAT, body, {"x-team": team})[0] == 200
        thread.start()
        time.sleep(0.3)
        server.kill()
        time.sleep(0.5)
        status, _, raw = stack.post(CHAT, body, {"x-team": team})
        if mode == "open":
            assert status == 200
        else:
            assert status == 503
            assert json.loads(raw)["error"]["code"] == "state_unavailable"
        # The outage is a metric, not only a log line.
        assert scrape(admin, "routeiq_state_outages_total") >= 1
        assert scrape(admin, "routeiq_state_degraded") == 1
        server.start()
        time.sleep(1.5)  # the recovery probe runs every 0.5 s
        assert stack.post(CHAT, body, {"x-team": team})[0] == 200
        with redis.Redis(port=server.port) as r:  # counters resumed in the new Redis
            assert r.keys("routeiq:*")
        assert scrape(admin, "routeiq_state_degraded") == 0
    finally:
        stop.set()
        thread.join(10)
        stack.envoy.stop()
    assert len(results) > 10
    assert max(elapsed for elapsed, _ in results) < 2.0  # nothing hung
    allowed = {200} if mode == "open" else {200, 503}
    assert {status for _, status in results} <= allowed


def test_response_over_envoys_buffer_is_not_broken_by_accounting(
    workdir: Path, backends: Backends, tmp_path: Path
) -> None:
    """Reading usage must never cost the client its answer: a 12 MB embeddings response
    (over the 8 MiB Envoy buffers) arrives whole while a token budget applies."""
    budget = {
        "limits": [
            {"name": "tokens", "key": "team", "tokensPerWindow": 10_000_000, "windowSeconds": 60}
        ]
    }
    config = write_config(
        tmp_path / "c.yaml", maxBodyBytes=1_000_000, state=budget, identity=TRUSTED_IDENTITY
    )
    with routeiq_server(config, workdir) as (_, port):
        stack = envoy_for(
            REPO / "envoy" / "routeiq-fail-closed.yaml",
            workdir,
            port,
            backends,
            trusted_identity=True,
        )
        try:
            body = json.dumps({"model": "gpt-4o-mini", "input": ["hi"] * 4500}).encode()
            status, _, raw = stack.post("/v1/embeddings", body, {"x-team": "big"})
            assert status == 200
            doc = json.loads(raw)
            assert len(raw) > 9 * 1024 * 1024 and len(doc["data"]) == 4500
            small = json.dumps({"model": "gpt-4o-mini", "input": ["hi"] * 3}).encode()
            assert stack.post("/v1/embeddings", small, {"x-team": "big"})[0] == 200
        finally:
            stack.envoy.stop()
