"""The shipped pair (``config/routeiq.yaml`` behind ``envoy/routeiq-fail-closed.yaml``)
through a real Envoy: the client's decision and budget headers arrive although most
requests have no response phase (Envoy copies them from the routed request), and Envoy
sends RouteIQ two messages per request except for the sampled status reads.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.configs import SHIPPED_CONFIG
from tests.fixtures.stack import REPO, Backends, EnvoyStack, envoy_for, routeiq_server

CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def shipped(workdir: Path, backends: Backends) -> Iterator[EnvoyStack]:
    with routeiq_server(SHIPPED_CONFIG, workdir) as (_, port):
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
        try:
            yield stack
        finally:
            stack.envoy.stop()


def messages_sent(stack: EnvoyStack) -> int:
    """Envoy's count of ext_proc messages sent to RouteIQ (its admin stats)."""
    url = f"http://127.0.0.1:{stack.admin_port}/stats?filter=ext_proc"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    (count,) = re.findall(r"ext_proc\.stream_msgs_sent: (\d+)", text)
    return int(count)


def test_decision_headers_arrive_without_a_response_phase(shipped: EnvoyStack) -> None:
    before = messages_sent(shipped)
    for _ in range(10):
        status, headers, _ = shipped.post(CHAT, BODY.encode(), {"content-type": "application/json"})
        assert status == 200
        assert headers["x-routeiq-backend"] == "eco"
        assert len(headers["x-routeiq-decision-id"]) == 16
        assert float(headers["x-routeiq-overhead-ms"]) > 0
    # Ten requests, two messages each, and one sampled status read (health.sampleEvery 10).
    assert messages_sent(shipped) - before == 21


def test_budget_headers_are_routeiqs_not_the_clients(shipped: EnvoyStack) -> None:
    team = {"content-type": "application/json", "authorization": "Bearer sk-demo-research"}
    status, headers, _ = shipped.post(CHAT, BODY.encode(), team)
    assert status == 200
    assert headers["x-ratelimit-limit-requests"] == "3"  # the demo team budget
    assert headers["x-ratelimit-remaining-requests"] == "2"
    # A client's own x-ratelimit-* never comes back as if RouteIQ had set it.
    spoof = {"content-type": "application/json", "x-ratelimit-remaining-requests": "999"}
    status, headers, _ = shipped.post(CHAT, BODY.encode(), spoof)
    assert status == 200
    assert "x-ratelimit-remaining-requests" not in headers
