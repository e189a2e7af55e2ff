"""Which routed requests get a response phase (a third ext_proc message), and what the
proxy is given instead: ``responseHeaders.setBy`` and ``health.sampleEvery``.

The shipped config (``config/routeiq.yaml``) lets Envoy copy the client's headers from
the routed request and samples backend health 1 request in 10.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingResponse

from extproc.config.settings import Settings
from extproc.config.snapshot import build_snapshot
from extproc.runtime import Runtime
from extproc.server.servicer import add_to_server
from extproc.state.memory import MemoryStateStore
from tests.servicer.test_servicer import (
    JSON,
    REPO,
    body_msg,
    exchange,
    headers_msg,
    set_headers,
    with_spec,
)
from tests.servicer.test_stream_end import EOF, response_headers

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
TEAM = {**JSON, "authorization": "Bearer sk-demo-support"}  # config/api-keys.yaml


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, Runtime]]:
    """The shipped config with an in-memory state store, as ``routeiq serve`` runs it."""
    snap = build_snapshot(REPO / "config" / "routeiq.yaml", with_router=False)
    runtime = Runtime(settings=Settings(), snapshot=snap, state=MemoryStateStore())
    srv = grpc.aio.server()
    add_to_server(srv, runtime)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield port, runtime
    await srv.stop(None)


def response_mode(answer: ProcessingResponse) -> int:
    return int(answer.mode_override.response_header_mode)


async def routed(port: int, status: int | None = None) -> tuple[int, bool]:
    """One explicit request: the response-header mode its headers answer asked for, and
    whether the server ended the stream after the body answer. With ``status``, a
    request that asked for the response phase is answered that upstream status."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pb_grpc.ExternalProcessorStub(channel).Process()
        await call.write(headers_msg(JSON))
        mode = response_mode(await call.read())
        await call.write(body_msg(BODY))
        assert (await call.read()).HasField("request_body")
        if mode == ProcessingMode.SEND:
            await call.write(response_headers(status or 200))
            assert (await call.read()).HasField("response_headers")
        ended = await call.read() is EOF
        await call.done_writing()
        return mode, ended


async def test_proxy_copied_headers_go_on_the_routed_request(
    served: tuple[int, Runtime],
) -> None:
    port, _ = served
    await routed(port)  # the sampled one: the next nine read no status
    on_headers, on_body = await exchange(port, [headers_msg(TEAM), body_msg(BODY)])
    assert response_mode(on_headers) == ProcessingMode.SKIP
    sent = set_headers(on_body, "request_body")
    assert sent["x-routeiq-backend"] == "eco"
    assert sent["x-routeiq-decision-id"]
    assert float(sent["x-routeiq-overhead-ms"]) > 0
    # The team's budget headers too: Envoy copies them to the client's response.
    assert sent["x-ratelimit-limit-requests"] == "3"
    assert sent["x-ratelimit-remaining-requests"] == "2"


async def test_routeiq_written_headers_keep_the_response_phase(
    served: tuple[int, Runtime],
) -> None:
    port, runtime = served
    runtime.state = None
    rh = runtime.snapshot.spec.response_headers.model_copy(update={"set_by": "routeiq"})
    with_spec(runtime, response_headers=rh)
    on_headers, on_body = await exchange(port, [headers_msg(TEAM), body_msg(BODY)])
    assert response_mode(on_headers) == ProcessingMode.SEND
    sent = set_headers(on_body, "request_body")
    assert "x-routeiq-overhead-ms" not in sent  # written on the response instead
    assert "x-ratelimit-limit-requests" not in sent


async def test_health_reads_one_status_in_n_then_all_after_a_failure(
    served: tuple[int, Runtime],
) -> None:
    port, runtime = served
    every = runtime.snapshot.state_rules.health.sample_every
    assert every == 10
    quiet = [await routed(port) for _ in range(2 * every)]
    assert [mode == ProcessingMode.SEND for mode, _ in quiet] == ([True] + [False] * 9) * 2
    assert all(ended for _, ended in quiet)  # every stream ends by itself
    # The sampled request meets a failing backend: every request reads its status now.
    mode, _ = await routed(port, status=503)
    assert mode == ProcessingMode.SEND
    after = [await routed(port, status=503) for _ in range(4)]
    assert all(mode == ProcessingMode.SEND for mode, _ in after)
    # Five failures within the window (the shipped threshold): the backend cools down.
    assert runtime.state is not None
    assert "eco" in await runtime.state.cooling_backends()


async def test_a_token_budget_keeps_usage_reads(served: tuple[int, Runtime]) -> None:
    """usageAccounting auto reads usage when a token budget may apply: such a config
    asks for the response phase on every routed request."""
    port, runtime = served
    runtime.state = None
    state = runtime.snapshot.spec.state
    limit = state.limits[0].model_copy(update={"tokens_per_window": 1000})
    with_spec(runtime, state=state.model_copy(update={"limits": (limit,)}))
    assert runtime.snapshot.state_rules.counts_tokens
    (on_headers,) = await exchange(port, [headers_msg(JSON)])
    assert response_mode(on_headers) == ProcessingMode.SEND
