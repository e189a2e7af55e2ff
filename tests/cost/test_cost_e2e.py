"""Costs through the real Envoy: buffered and streamed usage, and the estimate when the
upstream reports none.

``premium`` is the demo backend (usage in every answer: 10 prompt tokens, 12 completion
tokens buffered, one per word streamed). ``eco`` is an OpenAI-shaped upstream that
never reports usage, even when asked for it (``stream_options.include_usage``), so
RouteIQ prices its estimate: the request's prompt-token estimate and, for a stream,
the streamed characters at 4 per token. Expected figures are computed by hand from
tests/dashboard/dashboard.yaml's prices.
"""

from __future__ import annotations

import json
import math
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from extproc.api.openai import Endpoint, parse_request
from extproc.demo.processes import free_port
from tests.dashboard.conftest import Served, serve
from tests.fixtures.stack import Backends, start_backend

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
PROMPT = "Summarise the quarterly report in one line."
SILENT_TEXT = "An answer without any usage block at all."


class _Silent(BaseHTTPRequestHandler):
    """Chat completions with no ``usage``, buffered or streamed."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        doc = json.loads(self.rfile.read(int(self.headers["content-length"])))
        if doc.get("stream"):
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            for part in (SILENT_TEXT[:20], SILENT_TEXT[20:]):
                chunk = {"object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": {"content": part}}]}  # fmt: skip
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True
            return
        choice = {"index": 0, "message": {"role": "assistant", "content": SILENT_TEXT}}
        body = json.dumps({"object": "chat.completion", "choices": [choice]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("cost-e2e")
    silent = ThreadingHTTPServer(("127.0.0.1", free_port()), _Silent)
    thread = threading.Thread(target=silent.serve_forever, daemon=True)
    thread.start()
    backends = Backends(ports={"demo_eco": silent.server_address[1]})
    try:
        proc, port = start_backend("premium", workdir, stream_delay=0.01)
        backends.procs.append(proc)
        backends.ports["demo_premium"] = port
        yield from serve(workdir, backends)
    finally:
        for p in backends.procs:
            p.stop()
        silent.shutdown()
        silent.server_close()


def body(model: str, stream: bool = False) -> bytes:
    doc = {"model": model, "stream": stream, "messages": [{"role": "user", "content": PROMPT}]}
    return json.dumps(doc).encode()


def cost_by_backend(served: Served) -> dict[str, float]:
    with urllib.request.urlopen(f"{served.admin}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        s.labels["backend"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "routeiq_cost_usd_total"
    }


def test_buffered_streamed_and_estimated_costs(served: Served) -> None:
    for model, stream in (("gpt-4o", False), ("gpt-4o", True),
                          ("gpt-4o-mini", False), ("gpt-4o-mini", True)):  # fmt: skip
        status, headers, raw = served.envoy.post(CHAT, body(model, stream))
        assert status == 200, raw[:200]
        assert headers["x-routeiq-backend"] == ("premium" if model == "gpt-4o" else "eco")
    # premium, buffered: 10 x 2.50 + 12 x 10.00 = 145 per million. Streamed: 10 prompt
    # tokens and one completion token per word of the demo answer.
    words = len(f"[premium/gpt-4o] you said: {PROMPT}".split(" "))
    premium = (10 * 2.5 + 12 * 10.0) / 1e6 + (10 * 2.5 + words * 10.0) / 1e6
    # eco, no usage from upstream: the prompt estimate RouteIQ made of the request, plus
    # nothing (buffered: the body is not read for text) or the streamed characters / 4.
    prompt = parse_request(Endpoint.CHAT_COMPLETIONS, "POST", CHAT, {}, body("gpt-4o-mini"))
    p, streamed = prompt.prompt_tokens, math.ceil(len(SILENT_TEXT) / 4)
    eco = (p * 0.15) / 1e6 + (p * 0.15 + streamed * 0.60) / 1e6
    assert cost_by_backend(served) == pytest.approx({"premium": premium, "eco": eco}, abs=1e-12)
