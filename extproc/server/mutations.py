"""Builders for the ext_proc messages RouteIQ sends back to Envoy.

Kept free of decision logic: each function turns an already-made choice into the
exact protobuf Envoy expects (``raw_value`` headers, OVERWRITE actions, a fixed
``content-length`` whenever the body changes, ``clear_route_cache`` whenever the
route header changes).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from envoy.config.core.v3.base_pb2 import HeaderValueOption
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
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
    mutation = HeaderMutation()
    fill_mutation(mutation, set_headers, remove)
    return mutation


def fill_mutation(mutation: HeaderMutation, set_headers: Headers, remove: Iterable[str]) -> None:
    """Set ``set_headers`` (OVERWRITE, ``raw_value``) and ``remove`` on ``mutation`` in place.

    Filling the message a parent already holds (``add()`` and attribute assignment) costs
    about a third of building each ``HeaderValueOption`` and ``HeaderValue`` from keyword
    arguments and copying them into the parent, which is what the constructors do.
    """
    mutation.SetInParent()
    add = mutation.set_headers.add
    for key, value in set_headers:
        option = add()
        header = option.header
        header.key = key
        header.raw_value = value.encode()
        option.append_action = OVERWRITE
    if remove:
        mutation.remove_headers.extend(remove)


def continue_request_headers(
    remove: Iterable[str] = (), mode: ProcessingMode | None = None, set_headers: Headers = ()
) -> ProcessingResponse:
    """Let the request headers pass (minus ``remove``, plus ``set_headers``, e.g. a
    canonical ``:path``), optionally changing what comes next."""
    if mode is not None and not remove and not set_headers:
        return _plain_request_headers(mode.SerializeToString(deterministic=True))
    response = ProcessingResponse()
    fill_mutation(response.request_headers.response.header_mutation, set_headers, remove)
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
    response = ProcessingResponse()
    common = response.request_body.response
    fill_mutation(common.header_mutation, set_headers, remove)
    if new_body is not None:
        fill_mutation(common.header_mutation, (("content-length", str(len(new_body))),), ())
        common.body_mutation.body = new_body
    common.clear_route_cache = True
    return response


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
    response = ProcessingResponse()
    fill_mutation(response.response_headers.response.header_mutation, set_headers, ())
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
