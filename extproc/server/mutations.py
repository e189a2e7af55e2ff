"""Builders for the ext_proc messages RouteIQ sends back to Envoy.

Kept free of decision logic: each function turns an already-made choice into the
exact protobuf Envoy expects (``raw_value`` headers, OVERWRITE actions, a fixed
``content-length`` whenever the body changes, ``clear_route_cache`` whenever the
route header changes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    BodyMutation,
    BodyResponse,
    CommonResponse,
    HeaderMutation,
    HeadersResponse,
    ImmediateResponse,
    ProcessingResponse,
)
from envoy.type.v3.http_status_pb2 import HttpStatus

from extproc.api.errors import ApiError

OVERWRITE = HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
SEND = ProcessingMode.SEND
SKIP = ProcessingMode.SKIP
BUFFERED = ProcessingMode.BUFFERED
BUFFERED_PARTIAL = ProcessingMode.BUFFERED_PARTIAL
STREAMED = ProcessingMode.STREAMED
NONE = ProcessingMode.NONE

Headers = Iterable[tuple[str, str]]


def header_mutation(set_headers: Headers = (), remove: Iterable[str] = ()) -> HeaderMutation:
    return HeaderMutation(
        set_headers=[
            HeaderValueOption(
                header=HeaderValue(key=k, raw_value=v.encode()), append_action=OVERWRITE
            )
            for k, v in set_headers
        ],
        remove_headers=list(remove),
    )


def continue_request_headers(
    remove: Iterable[str] = (), mode: ProcessingMode | None = None, set_headers: Headers = ()
) -> ProcessingResponse:
    """Let the request headers pass (minus ``remove``, plus ``set_headers``, e.g. a
    canonical ``:path``), optionally changing what comes next."""
    if mode is not None and not remove and not set_headers:
        return _plain_request_headers(mode.SerializeToString(deterministic=True))
    response = ProcessingResponse(
        request_headers=HeadersResponse(
            response=CommonResponse(header_mutation=header_mutation(set_headers, remove))
        )
    )
    if mode is not None:
        response.mode_override.CopyFrom(mode)
    return response


@functools.lru_cache(maxsize=16)
def _plain_request_headers(mode: bytes) -> ProcessingResponse:
    """The common "headers pass, then do ``mode``" answer, one shared message per mode."""
    response = ProcessingResponse(
        request_headers=HeadersResponse(response=CommonResponse(header_mutation=HeaderMutation()))
    )
    response.mode_override.ParseFromString(mode)
    return response


def route_request_body(
    set_headers: Headers,
    remove: Iterable[str],
    new_body: bytes | None,
) -> ProcessingResponse:
    """Send the buffered request on with the route header set and, maybe, a new body.

    ``clear_route_cache`` makes Envoy pick the route again with the new header; a new
    body comes with its own ``content-length`` in the same mutation (Envoy rejects a
    body whose length disagrees with the header).
    """
    headers = list(set_headers)
    body_mutation = None
    if new_body is not None:
        headers.append(("content-length", str(len(new_body))))
        body_mutation = BodyMutation(body=new_body)
    common = CommonResponse(
        header_mutation=header_mutation(headers, remove),
        body_mutation=body_mutation,
        clear_route_cache=True,
    )
    return ProcessingResponse(request_body=BodyResponse(response=common))


# Answers that carry nothing request-specific are built once and shared by every stream
# (read-only: gRPC only serialises them); building one costs several microseconds.
_CONTINUE_REQUEST_BODY = ProcessingResponse(request_body=BodyResponse(response=CommonResponse()))
_CONTINUE_RESPONSE_BODY = ProcessingResponse(response_body=BodyResponse(response=CommonResponse()))
_CONTINUE_RESPONSE_HEADERS = ProcessingResponse(
    response_headers=HeadersResponse(response=CommonResponse(header_mutation=HeaderMutation()))
)


def continue_request_body() -> ProcessingResponse:
    return _CONTINUE_REQUEST_BODY


def continue_response_headers(
    set_headers: Headers = (), mode: ProcessingMode | None = None
) -> ProcessingResponse:
    if not set_headers and mode is None:
        return _CONTINUE_RESPONSE_HEADERS
    response = ProcessingResponse(
        response_headers=HeadersResponse(
            response=CommonResponse(header_mutation=header_mutation(set_headers))
        )
    )
    if mode is not None:
        response.mode_override.CopyFrom(mode)
    return response


def continue_response_body(new_body: bytes | None = None) -> ProcessingResponse:
    if new_body is None:
        return _CONTINUE_RESPONSE_BODY
    common = CommonResponse()
    if new_body is not None:
        common.body_mutation.body = new_body
    return ProcessingResponse(response_body=BodyResponse(response=common))


def immediate(error: ApiError, details: str, extra_headers: Headers = ()) -> ProcessingResponse:
    """Answer the client directly with an OpenAI-style error; nothing reaches a backend."""
    headers = [("content-type", "application/json"), *error.headers, *extra_headers]
    return ProcessingResponse(
        immediate_response=ImmediateResponse(
            status=HttpStatus(code=error.status),  # type: ignore[arg-type,unused-ignore]
            headers=header_mutation(headers),
            body=error.body(),
            details=details,
        )
    )


def reply(status: int, body: bytes, headers: Headers, details: str) -> ProcessingResponse:
    """Answer the client directly with ``body`` (a cached answer; ``headers`` carry its
    ``content-type``); nothing reaches a backend."""
    return ProcessingResponse(
        immediate_response=ImmediateResponse(
            status=HttpStatus(code=status),  # type: ignore[arg-type,unused-ignore]
            headers=header_mutation(headers),
            body=body,
            details=details,
        )
    )


def processing_mode(
    request_body: ProcessingMode.BodySendMode.ValueType = BUFFERED,
    response_headers: ProcessingMode.HeaderSendMode.ValueType = SKIP,
    response_body: ProcessingMode.BodySendMode.ValueType = NONE,
) -> ProcessingMode:
    """A complete processing mode (an override replaces every field, so name them all)."""
    return ProcessingMode(
        request_header_mode=SEND,
        request_body_mode=request_body,
        response_header_mode=response_headers,
        response_body_mode=response_body,
        request_trailer_mode=SKIP,
        response_trailer_mode=SKIP,
    )
