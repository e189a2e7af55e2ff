"""The servicer ends each ext_proc stream itself (status OK) once the processor has given
its last answer, without waiting for Envoy to half-close.

Why it matters: Envoy ends a stream it still holds by a half-close followed at once by
a reset; the reset cancels the read the servicer has pending, and grpc.aio leaks the
native operation array of a cancelled or failed batch (grpc/grpc issue 43360), 100-150
bytes per request for the life of the process (docs/benchmarks.md, "Soak"). These
tests drive a real grpc.aio server with a real gRPC client that never half-closes:
the stream must still end, with OK, right after the last answer, and stay open while
more phases are expected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
)

from extproc.config.settings import Settings
from extproc.config.snapshot import build_snapshot
from extproc.runtime import Runtime
from extproc.server.servicer import add_to_server
from tests.servicer.test_servicer import CHAT, JSON, REPO, body_msg, headers_msg

EOF = grpc.aio.EOF  # type: ignore[attr-defined]  # what read() returns once the stream ended
HANG_GUARD_S = 30.0  # only turns a stream that never ends into a failure, not a speed check
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
USAGE = {"usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


async def serving(usage_accounting: str) -> AsyncIterator[int]:
    """A real grpc.aio server with the servicer, on the shipped config with
    ``usageAccounting`` set (``always``: every routed response body is read) and the
    decision headers written by RouteIQ (so every routed request has a response phase)."""
    snap = build_snapshot(REPO / "config" / "routeiq.yaml", with_router=False)
    rh = snap.config.spec.response_headers.model_copy(update={"set_by": "routeiq"})
    update = {"usage_accounting": usage_accounting, "response_headers": rh}
    spec = snap.config.spec.model_copy(update=update)
    snap = dataclasses.replace(snap, config=snap.config.model_copy(update={"spec": spec}))
    srv = grpc.aio.server()
    add_to_server(srv, Runtime(settings=Settings(), snapshot=snap))
    bound = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    yield bound
    await srv.stop(None)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async for bound in serving("always"):
        yield bound


@pytest.fixture
async def port_shipped() -> AsyncIterator[int]:
    async for bound in serving("auto"):
        yield bound


def response_headers(status: int = 200) -> ProcessingRequest:
    values = [HeaderValue(key=":status", raw_value=str(status).encode())]
    return ProcessingRequest(response_headers=HttpHeaders(headers=HeaderMap(headers=values)))


def response_body(body: bytes, eos: bool = True) -> ProcessingRequest:
    return ProcessingRequest(response_body=HttpBody(body=body, end_of_stream=eos))


async def ends_after(port: int, messages: Sequence[ProcessingRequest]) -> grpc.StatusCode:
    """Send ``messages`` one at a time, each answered, never half-closing; the status the
    server ended the stream with."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pb_grpc.ExternalProcessorStub(channel).Process()
        for message in messages:
            await call.write(message)
            answer = await call.read()
            assert answer is not EOF
            assert answer.WhichOneof("response") in (
                message.WhichOneof("request"),
                "immediate_response",
            )
        async with asyncio.timeout(HANG_GUARD_S):
            assert await call.read() is EOF
        code: grpc.StatusCode = await call.code()
        return code


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([headers_msg({}, "/healthz", "GET")], id="passthrough"),
        pytest.param([headers_msg({}, "/v1/models", "GET")], id="models-listing"),
        pytest.param([headers_msg({"content-type": "text/plain"})], id="header-refusal"),
        pytest.param([headers_msg(JSON, CHAT, eos=True)], id="empty-body"),
        pytest.param([headers_msg(JSON), body_msg(b"{")], id="body-refusal"),
        pytest.param(
            [headers_msg(JSON), body_msg(CHAT_BODY), response_headers(502)], id="upstream-error"
        ),
        pytest.param(
            [
                headers_msg(JSON),
                body_msg(CHAT_BODY),
                response_headers(),
                response_body(json.dumps(USAGE).encode()),
            ],
            id="routed-json-usage",
        ),
        pytest.param(
            [
                headers_msg(JSON),
                body_msg({**CHAT_BODY, "stream": True}),
                response_headers(),
                response_body(b'data: {"choices":[]}\n\n', eos=False),
                response_body(b"data: [DONE]\n\n"),
            ],
            id="routed-stream",
        ),
    ],
)
async def test_the_server_ends_the_stream_after_the_last_answer(
    port: int, messages: list[ProcessingRequest]
) -> None:
    assert await ends_after(port, messages) == grpc.StatusCode.OK


async def test_a_response_whose_body_is_not_read_ends_at_its_headers(port_shipped: int) -> None:
    """The shipped config reads no response body without a token budget: the response
    headers answer is the last one."""
    messages = [headers_msg(JSON), body_msg(CHAT_BODY), response_headers()]
    assert await ends_after(port_shipped, messages) == grpc.StatusCode.OK


async def test_the_stream_stays_open_while_phases_are_expected(port: int) -> None:
    """After the routed body (response headers asked for) and after a streamed chunk
    that is not the last, the server keeps the stream and answers the next phase."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = pb_grpc.ExternalProcessorStub(channel).Process()
        phases = [
            headers_msg(JSON),
            body_msg({**CHAT_BODY, "stream": True}),
            response_headers(),
            response_body(b'data: {"choices":[]}\n\n', eos=False),
        ]
        for message in phases:
            await call.write(message)
            answer = await call.read()
            assert answer is not EOF
            assert answer.WhichOneof("response") == message.WhichOneof("request")
        assert not call.done()
        await call.write(response_body(b"data: [DONE]\n\n"))
        assert (await call.read()).HasField("response_body")
        async with asyncio.timeout(HANG_GUARD_S):
            assert await call.read() is EOF
        assert await call.code() == grpc.StatusCode.OK
