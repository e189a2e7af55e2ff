"""``routeiq serve`` after a config file that kills YAML parsers: the bad reload is
logged and counted, and SIGTERM still drains the stream in flight and exits 0."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
)

from tests.fixtures.stack import routeiq_server
from tests.unit.test_watcher import BAD_FILES, CONFIG

ENV = {
    "ROUTEIQ_RELOAD_INTERVAL_MS": "100",
    "ROUTEIQ_RELOAD_DEBOUNCE_MS": "100",
    "ROUTEIQ_GRACE_PERIOD_S": "20",
}


def _headers(pairs: dict[str, str], eos: bool = False) -> HttpHeaders:
    values = [HeaderValue(key=k, raw_value=v.encode()) for k, v in pairs.items()]
    return HttpHeaders(headers=HeaderMap(headers=values), end_of_stream=eos)


REQUEST_HEADERS = ProcessingRequest(
    request_headers=_headers(
        {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}
    )
)
REQUEST_BODY = ProcessingRequest(
    request_body=HttpBody(
        body=b'{"model":"m1","messages":[{"role":"user","content":"hi"}]}', end_of_stream=True
    )
)
RESPONSE_HEADERS = ProcessingRequest(response_headers=_headers({":status": "200"}))


def wait_for_output(proc: object, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in proc.output():  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"no {text!r} in:\n{proc.output()[-3000:]}"  # type: ignore[attr-defined]
        time.sleep(0.1)


async def test_sigterm_after_a_bad_reload_drains_and_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "routeiq.yaml"
    config.write_text(CONFIG)
    with routeiq_server(config, tmp_path, ENV) as (proc, port):
        config.write_bytes(BAD_FILES["nested-flow"])
        wait_for_output(proc, "config reload rejected")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = pb_grpc.ExternalProcessorStub(channel).Process()
            await call.write(REQUEST_HEADERS)
            assert (await call.read()).HasField("request_headers")
            await call.write(REQUEST_BODY)
            routed = await call.read()
            assert routed.request_body.response.clear_route_cache  # routed by the good config
            proc.signal(signal.SIGTERM)  # the stream is in flight: the upstream is answering
            wait_for_output(proc, "routeiq draining")
            await asyncio.sleep(0.3)
            await call.write(RESPONSE_HEADERS)
            assert (await call.read()).HasField("response_headers")
            await call.done_writing()
            assert await call.code() == grpc.StatusCode.OK
        assert proc.proc.wait(20) == 0
        output = proc.output()
        assert "routeiq stopped" in output and "Traceback" not in output
        assert output.count("config reload rejected") == 1  # the bad file is not retried
