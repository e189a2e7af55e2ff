"""The ``envoy.service.ext_proc.v3.ExternalProcessor`` gRPC service (grpc.aio)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.ext_proc.v3.external_processor_pb2 import ProcessingRequest, ProcessingResponse

from extproc.runtime import Runtime
from extproc.server.processor import Processor


class ExternalProcessor(pb_grpc.ExternalProcessorServicer):  # type: ignore[misc]
    """One ``Processor`` per stream; a bug in a phase is logged, counted and answered.

    A failing phase never ends the stream silently: Envoy would then apply its own
    failure mode with an empty 500. The processor answers per the operator's
    ``failureMode`` instead.

    Once the processor has given the last answer the stream needs
    (``Processor.finished``), the handler returns: the stream ends here with status OK
    instead of waiting for Envoy's close, whose reset would cancel a pending read and
    leak native memory in grpc.aio on every request (see ``extproc.server.processor``).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def Process(
        self,
        request_iterator: AsyncIterator[ProcessingRequest],
        context: grpc.aio.ServicerContext[ProcessingRequest, ProcessingResponse],
    ) -> None:
        processor = Processor(self.runtime)
        read, write, eof = context.read, context.write, grpc.aio.EOF  # type: ignore[attr-defined]
        while True:
            request = await read()
            if request is eof:
                return
            try:
                response = await processor.handle(request)
            except Exception:
                phase = request.WhichOneof("request")
                self.runtime.log.exception("ext_proc phase %s failed", phase)
                self.runtime.count_error(f"servicer_{phase}")
                response = processor.on_failure(phase)
            await write(response)
            if processor.finished:
                return


def add_to_server(server: grpc.aio.Server, runtime: Runtime) -> None:
    pb_grpc.add_ExternalProcessorServicer_to_server(ExternalProcessor(runtime), server)
