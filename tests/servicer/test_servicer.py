"""The ext_proc servicer on a real grpc.aio server, driven by a real gRPC client."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import grpc
import pytest
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.config.schema import FailureMode
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.runtime import Runtime
from extproc.server.health import SERVICES, Health
from extproc.server.servicer import add_to_server
from extproc.state.rules import compile_state_rules

REPO = Path(__file__).resolve().parents[2]
CHAT = "/v1/chat/completions"


class BrokenRouter:
    """A router with a bug: the servicer must answer per the failure mode, not die."""

    def classify(self, request: object, sticky_key: object) -> object:
        raise RuntimeError("boom")


@pytest.fixture
def snapshot() -> Snapshot:
    return build_snapshot(REPO / "config" / "routeiq.yaml", with_router=False)


@pytest.fixture
async def server(snapshot: Snapshot) -> AsyncIterator[tuple[grpc.aio.Server, int, Runtime, Health]]:
    runtime = Runtime(settings=Settings(), snapshot=snapshot)
    srv = grpc.aio.server()
    add_to_server(srv, runtime)
    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    await srv.start()
    await health.set_all(serving=True)
    yield srv, port, runtime, health
    await srv.stop(None)


def with_spec(runtime: Runtime, **update: object) -> Snapshot:
    """Serve ``runtime`` a copy of its snapshot with these ``spec`` fields replaced."""
    snap = runtime.snapshot
    spec = snap.config.spec.model_copy(update=update)
    runtime.snapshot = dataclasses.replace(
        snap,
        config=snap.config.model_copy(update={"spec": spec}),
        state_rules=compile_state_rules(spec.state),
    )
    return runtime.snapshot


def headers_msg(
    headers: dict[str, str], path: str = CHAT, method: str = "POST", eos: bool = False
) -> ProcessingRequest:
    all_headers = {":method": method, ":path": path, ":authority": "gw", **headers}
    return ProcessingRequest(
        request_headers=HttpHeaders(
            headers=HeaderMap(
                headers=[HeaderValue(key=k, raw_value=v.encode()) for k, v in all_headers.items()]
            ),
            end_of_stream=eos,
        )
    )


def body_msg(body: bytes | Mapping[str, object]) -> ProcessingRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ProcessingRequest(request_body=HttpBody(body=raw, end_of_stream=True))


def response_headers_msg() -> ProcessingRequest:
    return ProcessingRequest(
        response_headers=HttpHeaders(
            headers=HeaderMap(headers=[HeaderValue(key=":status", raw_value=b"200")])
        )
    )


async def exchange(port: int, messages: Sequence[ProcessingRequest]) -> list[ProcessingResponse]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ExternalProcessorStub(channel)
        call = stub.Process()
        out = []
        for message in messages:
            await call.write(message)
            out.append(await call.read())
            if out[-1].HasField("immediate_response"):
                break
        await call.done_writing()
        return out


def set_headers(resp: ProcessingResponse, phase: str) -> dict[str, str]:
    common = getattr(resp, phase).response
    return {h.header.key: h.header.raw_value.decode() for h in common.header_mutation.set_headers}


def immediate_error(resp: ProcessingResponse) -> tuple[int, dict[str, object]]:
    assert resp.HasField("immediate_response"), resp
    imm = resp.immediate_response
    ctype = {h.header.key: h.header.raw_value for h in imm.headers.set_headers}["content-type"]
    assert ctype == b"application/json"
    return int(imm.status.code), json.loads(imm.body)["error"]


JSON = {"content-type": "application/json"}


async def test_routed_request_full_exchange(
    server: tuple[grpc.aio.Server, int, Runtime, Health],
) -> None:
    _, port, runtime, _ = server
    # RouteIQ writes the client's decision headers itself, in the response phase.
    rh = runtime.snapshot.spec.response_headers.model_copy(update={"set_by": "routeiq"})
    with_spec(runtime, response_headers=rh)
    spoof = {"x-routeiq-cluster": "demo_premium", "x-routeiq-whatever": "1"}
    body = {"model": "o3", "messages": [{"role": "user", "content": "hi"}]}
    r_headers, r_body, r_resp = await exchange(
        port, [headers_msg({**JSON, **spoof}), body_msg(body), response_headers_msg()]
    )
    # Headers phase: strip spoofed routing headers, ask for the buffered body and response headers.
    common = r_headers.request_headers.response
    assert set(common.header_mutation.remove_headers) == set(spoof)
    mode = r_headers.mode_override
    assert mode.request_body_mode == ProcessingMode.BUFFERED
    assert mode.response_header_mode == ProcessingMode.SEND
    # Body phase: route header + clear_route_cache + rewritten model with its length.
    assert r_body.request_body.response.clear_route_cache
    sent = set_headers(r_body, "request_body")
    assert sent["x-routeiq-cluster"] == "demo_premium"
    assert sent["x-routeiq-backend"] == "premium"
    new_body = r_body.request_body.response.body_mutation.body
    assert json.loads(new_body) == {**body, "model": "o3-2025-04-16"}
    assert sent["content-length"] == str(len(new_body))
    # Response headers phase: decision headers for the client.
    got = set_headers(r_resp, "response_headers")
    assert got["x-routeiq-backend"] == "premium"
    assert got["x-routeiq-decision-id"] == sent["x-routeiq-decision-id"]
    assert float(got["x-routeiq-overhead-ms"]) > 0


async def test_unchanged_model_is_not_rewritten(
    server: tuple[grpc.aio.Server, int, Runtime, Health],
) -> None:
    _, port, _, _ = server
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    _, r_body = await exchange(port, [headers_msg(JSON), body_msg(body)])
    assert not r_body.request_body.response.HasField("body_mutation")
    assert "content-length" not in set_headers(r_body, "request_body")
    assert set_headers(r_body, "request_body")["x-routeiq-cluster"] == "demo_eco"


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/healthz"), ("GET", "*")],  # /v1/models: answered from the config
)
async def test_passthrough_skips_body(
    server: tuple[grpc.aio.Server, int, Runtime, Health], method: str, path: str
) -> None:
    _, port, _, _ = server
    spoofed = {"x-routeiq-cluster": "x", "x-routeiq-category": "y", "x-routeiq-profile": "eco"}
    (resp,) = await exchange(port, [headers_msg(spoofed, path, method)])
    assert resp.mode_override.request_body_mode == ProcessingMode.NONE
    assert resp.mode_override.response_header_mode == ProcessingMode.SKIP
    mutation = resp.request_headers.response.header_mutation
    assert sorted(mutation.remove_headers) == sorted(spoofed)
    assert not mutation.set_headers


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/v1/files", 404, "unknown_path"),
        ("POST", "/v1/chat/completions/x", 404, "unknown_path"),
        ("GET", CHAT, 405, "method_not_allowed"),
        ("POST", "/v1/chat/completions%2525", 400, "invalid_path"),
        ("POST", "/v1/chat/%zz", 400, "invalid_path"),
    ],
)
async def test_unknown_paths_below_the_prefix_are_refused(
    server: tuple[grpc.aio.Server, int, Runtime, Health],
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    _, port, _, _ = server
    (resp,) = await exchange(port, [headers_msg({"x-routeiq-category": "spoof"}, path, method)])
    assert immediate_error(resp)[0] == status
    assert immediate_error(resp)[1]["code"] == code
    assert resp.immediate_response.details == f"routeiq_{code}"
    sent = {h.header.key for h in resp.immediate_response.headers.set_headers}
    assert not any(k.startswith("x-routeiq-") for k in sent)  # nothing echoed
    if status == 405:
        assert ("allow", b"POST") in {
            (h.header.key, h.header.raw_value) for h in resp.immediate_response.headers.set_headers
        }


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/v1/%63hat/completions", CHAT),
        ("/V1/Chat/Completions;x=1?api-version=2", CHAT + "?api-version=2"),
        ("/v1/x/../embeddings/", "/v1/embeddings"),
        (CHAT, None),
        (CHAT + "?a=b", None),
    ],
)
async def test_odd_spellings_are_decided_on_the_canonical_path(
    server: tuple[grpc.aio.Server, int, Runtime, Health], path: str, upstream: str | None
) -> None:
    _, port, _, _ = server
    (resp,) = await exchange(port, [headers_msg(JSON, path)])
    assert resp.mode_override.request_body_mode == ProcessingMode.BUFFERED
    assert set_headers(resp, "request_headers").get(":path") == upstream


@pytest.mark.parametrize(
    ("headers", "eos", "status", "code"),
    [
        ({"content-type": "text/plain"}, False, 415, "unsupported_media_type"),
        ({}, False, 415, "unsupported_media_type"),
        ({**JSON, "content-length": "99999999"}, False, 413, "request_too_large"),
        (JSON, True, 400, "invalid_request"),
    ],
)
async def test_header_phase_refusals(
    server: tuple[grpc.aio.Server, int, Runtime, Health],
    headers: dict[str, str],
    eos: bool,
    status: int,
    code: str,
) -> None:
    _, port, _, _ = server
    (resp,) = await exchange(port, [headers_msg(headers, eos=eos)])
    assert immediate_error(resp)[0] == status
    assert immediate_error(resp)[1]["code"] == code


async def test_body_phase_refusals(server: tuple[grpc.aio.Server, int, Runtime, Health]) -> None:
    _, port, _, _ = server
    cases = [
        (b"{", 400, "invalid_json"),
        (b'{"model":"x","messages":[{"role":"user","content":"a"}]}', 404, "model_not_found"),
        (b'{"model":"gpt-4o"}', 400, "missing_messages"),
        (b'{"model":"gpt-4o","messages":"' + b"a" * 1_100_000 + b'"}', 413, "request_too_large"),
    ]
    for raw, status, code in cases:
        _, resp = await exchange(port, [headers_msg(JSON), body_msg(raw)])
        assert immediate_error(resp)[0] == status, raw[:40]
        assert immediate_error(resp)[1]["code"] == code


@pytest.mark.parametrize("mode", [FailureMode.CLOSED, FailureMode.OPEN])
async def test_a_bug_is_answered_per_failure_mode(
    server: tuple[grpc.aio.Server, int, Runtime, Health], mode: FailureMode
) -> None:
    _, port, runtime, _ = server
    snap = runtime.snapshot
    spec = snap.config.spec.model_copy(update={"failure_mode": mode})
    runtime.snapshot = dataclasses.replace(
        snap,
        config=snap.config.model_copy(update={"spec": spec}),
        router=BrokenRouter(),  # type: ignore[arg-type]
    )
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    _, resp = await exchange(port, [headers_msg(JSON), body_msg(body)])
    assert runtime.stats.errors["servicer_request_body"] == 1
    if mode is FailureMode.CLOSED:
        status, error = immediate_error(resp)
        assert status == 500 and error["code"] == "routeiq_internal_error"
        assert "boom" not in json.dumps(error)  # no internals leak to the client
    else:
        assert set_headers(resp, "request_body")["x-routeiq-cluster"] == "demo_eco"


async def test_health_reports_every_service(
    server: tuple[grpc.aio.Server, int, Runtime, Health],
) -> None:
    _, port, _, health = server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in SERVICES:
            got = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert got.status == health_pb2.HealthCheckResponse.SERVING, name
        await health.set_draining()
        got = await stub.Check(health_pb2.HealthCheckRequest(service="readiness"))
        assert got.status == health_pb2.HealthCheckResponse.NOT_SERVING
        got = await stub.Check(health_pb2.HealthCheckRequest(service="liveness"))
        assert got.status == health_pb2.HealthCheckResponse.SERVING
