"""The Python floor: a bare grpc.aio ext_proc that only sets the route header.

Request headers are answered with a processing-mode override to ``BUFFERED`` (as
RouteIQ does), the buffered body with the route header and ``clear_route_cache``;
nothing is parsed, decided, logged or counted. Whatever RouteIQ costs above this
server is RouteIQ's own work; what this server costs is grpc.aio's per-stream price.
The stream is read and written the way ``extproc/server/servicer.py`` does
(``context.read()``/``context.write()``), so the two differ only in what they compute.
With ``--response-headers`` it also asks for the response headers and passes them on
unchanged: the same three messages per request as RouteIQ's shipped config. Like
RouteIQ's servicer, it ends each stream itself (status OK) after the last answer the
request needs, instead of waiting for Envoy to close it.

    .venv/bin/python benchmarks/floor_server.py --port 50061 [--cluster X] [--response-headers]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import grpc
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyResponse,
    CommonResponse,
    HeaderMutation,
    HeadersResponse,
    ProcessingRequest,
    ProcessingResponse,
)

ROUTE_HEADER = "x-routeiq-cluster"


def _responses(
    cluster: str, response_headers: bool
) -> tuple[ProcessingResponse, ProcessingResponse, ProcessingResponse]:
    """The three answers this server ever gives, built once."""
    headers = ProcessingResponse(request_headers=HeadersResponse(response=CommonResponse()))
    headers.mode_override.CopyFrom(
        ProcessingMode(
            request_header_mode=ProcessingMode.SEND,
            request_body_mode=ProcessingMode.BUFFERED,
            response_header_mode=ProcessingMode.SEND if response_headers else ProcessingMode.SKIP,
            response_body_mode=ProcessingMode.NONE,
            request_trailer_mode=ProcessingMode.SKIP,
            response_trailer_mode=ProcessingMode.SKIP,
        )
    )
    route = HeaderValueOption(
        header=HeaderValue(key=ROUTE_HEADER, raw_value=cluster.encode()),
        append_action=HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )
    body = ProcessingResponse(
        request_body=BodyResponse(
            response=CommonResponse(
                header_mutation=HeaderMutation(set_headers=[route]), clear_route_cache=True
            )
        )
    )
    other = ProcessingResponse(response_headers=HeadersResponse(response=CommonResponse()))
    return headers, body, other


class FloorProcessor(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    def __init__(self, cluster: str, response_headers: bool = False) -> None:
        self._headers, self._body, self._other = _responses(cluster, response_headers)
        self._last = "response_headers" if response_headers else "request_body"

    async def Process(
        self,
        request_iterator: AsyncIterator[ProcessingRequest],
        context: grpc.aio.ServicerContext[ProcessingRequest, ProcessingResponse],
    ) -> None:
        read, write, eof = context.read, context.write, grpc.aio.EOF  # type: ignore[attr-defined]
        while True:
            request = await read()
            if request is eof:
                return
            phase = request.WhichOneof("request")
            if phase == "request_headers":
                await write(self._headers)
            elif phase == "request_body":
                await write(self._body)
            else:
                await write(self._other)
            if phase == self._last:
                return  # end the stream with OK after the last answer, as RouteIQ does


async def serve(host: str, port: int, cluster: str, response_headers: bool) -> None:
    server = grpc.aio.server()
    floor = FloorProcessor(cluster, response_headers)
    pb_grpc.add_ExternalProcessorServicer_to_server(floor, server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cluster", default="demo_eco", help="value of the route header")
    parser.add_argument(
        "--response-headers",
        action="store_true",
        help="also ask for the response headers (a third message per request, as RouteIQ "
        "does for backend health and the decision headers) and pass them unchanged",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.cluster, args.response_headers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
