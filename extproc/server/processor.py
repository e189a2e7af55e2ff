"""One ext_proc stream (one HTTP request) from Envoy's point of view.

A ``Processor`` pins the snapshot the request started with and answers each phase
Envoy sends: request headers (cheap checks, strip client routing headers, pick which
phases come next), request body (parse, decide, mutate, refuse or answer from the
cache), response headers (health, decision headers, and whether to read the body for
usage or for the cache), response body (usage: the whole JSON, or the SSE stream chunk
by chunk without holding it back; a cache miss's answer collected, then stored).
Paths that are not OpenAI inference calls are let through after the headers phase,
with their body never sent to RouteIQ.

``finished`` turns true once the answer just given is the last one this stream needs
(an immediate response, a passthrough, a response whose body is not read, the last
body chunk): the servicer then ends the stream itself with status OK. Envoy (without
``ext_proc_graceful_grpc_close``) otherwise ends every stream by a half-close
followed at once by a reset, which fails the read the servicer has pending (or the
status it sends after the half-close), and grpc.aio leaks the native operation array
of a cancelled or failed batch (grpc/grpc issue 43360): 100-150 bytes of native heap
per request measured, never returned. An OK close is Envoy's "nothing more from this
processor" for the rest of the request.
"""

from __future__ import annotations

import time

from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.api.admission import admit, check_body, empty_body
from extproc.api.errors import ApiError, internal_error
from extproc.api.openai import Endpoint, ParsedRequest, parse_request, patch_body
from extproc.api.usage import StreamUsageParser, Usage, usage_from_json
from extproc.cache.capture import ResponseCapture
from extproc.config.schema import FailureMode
from extproc.decide import fail_open_decision
from extproc.decision import Decision, Outcome
from extproc.headers import OVERHEAD_MS
from extproc.runtime import Runtime
from extproc.server import mutations as m

_PASSTHROUGH_MODE = m.processing_mode(request_body=m.NONE)
_BUFFER_MODE = m.processing_mode(request_body=m.BUFFERED)
_BUFFER_WITH_RESPONSE_MODE = m.processing_mode(request_body=m.BUFFERED, response_headers=m.SEND)
# Partial, not BUFFERED: a response over Envoy's buffer limit would otherwise be a 500.
_READ_JSON_MODE = m.processing_mode(response_headers=m.SEND, response_body=m.BUFFERED_PARTIAL)
_READ_STREAM_MODE = m.processing_mode(response_headers=m.SEND, response_body=m.STREAMED)


def _decode_headers(message: HttpHeaders) -> dict[str, str]:
    headers: dict[str, str] = {}
    for h in message.headers.headers:
        value = h.raw_value.decode("utf-8", "replace") if h.raw_value else h.value
        # A repeated header keeps its first value: enough for the headers RouteIQ reads.
        headers.setdefault(h.key.lower(), value)
    return headers


def _header(message: HttpHeaders, name: str) -> bytes:
    """The raw value of header ``name`` (lower-case) in ``message``, or b""."""
    return next((h.raw_value for h in message.headers.headers if h.key == name), b"")


class Processor:
    __slots__ = (
        "_body",
        "_capture",
        "_endpoint",
        "_headers",
        "_overhead",
        "_parsed",
        "_phase_started",
        "_spoofed",
        "_stream",
        "_upstream_status",
        "_wants_response",
        "decision",
        "finished",
        "runtime",
        "snapshot",
    )

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.snapshot = runtime.snapshot
        self.decision: Decision | None = None
        self._headers: dict[str, str] = {}
        self._endpoint: Endpoint | None = None
        self._parsed: ParsedRequest | None = None
        self._spoofed: tuple[str, ...] = ()
        self._body = b""
        self._overhead = 0.0
        self._stream: StreamUsageParser | None = None
        self._capture: ResponseCapture | None = None  # a cache miss's answer, for storing
        self._upstream_status = 0
        self._wants_response = False  # response headers asked for in the headers phase
        self._phase_started = 0.0  # when the phase being answered arrived (perf_counter)
        self.finished = False  # the last answer this stream needs has been given

    async def handle(self, request: ProcessingRequest) -> ProcessingResponse:
        started = self._phase_started = time.perf_counter()
        try:
            phase = request.WhichOneof("request")
            if phase == "request_body":
                return await self._on_request_body(request.request_body)
            if phase == "request_headers":
                return self._on_request_headers(request.request_headers)
            if phase == "response_headers":
                return await self._on_response_headers(request.response_headers)
            if phase == "response_body":
                return await self._on_response_body(request.response_body)
            raise ValueError(f"unexpected ext_proc phase {phase!r}")
        finally:
            self._overhead += time.perf_counter() - started

    # -- request headers -------------------------------------------------------------

    def _on_request_headers(self, message: HttpHeaders) -> ProcessingResponse:
        headers = self._headers = _decode_headers(message)
        spec = self.snapshot.spec
        target = headers.get(":path", "")
        admission = admit(headers.get(":method", ""), target, headers, spec)
        # Every client-sent x-routeiq-* header (and the route header) is removed from the
        # request on every path below; refusals never copy request headers.
        self._spoofed = admission.spoofed
        if admission.listing is not None:  # the models the config serves, never a backend's
            listing = admission.listing
            self.finished = True
            return m.reply(listing.status, listing.body, listing.headers, "routeiq_models")
        if admission.error is not None:
            self.finished = True
            return m.immediate(admission.error, f"routeiq_{admission.error.code}")
        match = admission.match
        if not admission.inference:
            self.finished = True  # nothing more is asked for: the stream is done
            return m.continue_request_headers(self._spoofed, _PASSTHROUGH_MODE)
        assert match.endpoint is not None
        self._endpoint = match.endpoint
        # The upstream gets the path RouteIQ decided on, whatever spelling the client used.
        path_fix: tuple[tuple[str, str], ...] = ()
        if match.upstream_target != target:
            headers[":path"] = match.upstream_target
            path_fix = ((":path", match.upstream_target),)
        if message.end_of_stream:
            self.finished = True
            return m.immediate(empty_body(), "routeiq_empty_body")
        self._wants_response = wants_response = self._needs_response_phase()
        mode = _BUFFER_WITH_RESPONSE_MODE if wants_response else _BUFFER_MODE
        return m.continue_request_headers(self._spoofed, mode, path_fix)

    def _needs_response_phase(self) -> bool:
        """Whether this request asks for the response headers (one more message): for
        decision headers RouteIQ writes itself, usage of a token budget, the answer
        cache, or a backend-health status read (sampled per ``health.sampleEvery``,
        so asked last)."""
        spec = self.snapshot.spec
        return (
            spec.response_headers.needs_response_phase
            or spec.usage_accounting == "always"
            or (spec.usage_accounting == "auto" and self.snapshot.state_rules.counts_tokens)
            or spec.cache.enabled
            or self.runtime.reads_status(self.snapshot)
        )

    # -- request body ----------------------------------------------------------------

    async def _on_request_body(self, message: HttpBody) -> ProcessingResponse:
        if self._endpoint is None:  # body sent for a passthrough request: leave it alone
            self.finished = True
            return m.continue_request_body()
        spec = self.snapshot.spec
        body = self._body + message.body if self._body else message.body
        refused = check_body(len(body), spec, complete=message.end_of_stream)
        if refused is not None:
            self.finished = True
            return m.immediate(refused, f"routeiq_{refused.code}")
        if not message.end_of_stream:
            self._body = body
            return m.continue_request_body()
        headers = self._headers
        try:
            parsed = self._parsed = parse_request(
                self._endpoint,
                headers.get(":method", "POST"),
                headers.get(":path", ""),
                headers,
                body,
            )
        except ApiError as error:
            self.finished = True
            return m.immediate(error, "routeiq_bad_request")
        decision = self.decision = await self.runtime.decide(parsed, self.snapshot, headers)
        # Every answer below is final except a routed request whose response is read.
        self.finished = True
        if decision.outcome is Outcome.DENIED:
            assert decision.error is not None
            return m.immediate(decision.error, "routeiq_denied", decision.response_headers)
        if decision.outcome is Outcome.CACHED:
            assert decision.cache is not None
            return m.reply(200, decision.cache.body, decision.response_headers, "routeiq_cache_hit")
        new_body = (
            patch_body(parsed.body, decision.body_overrides) if decision.rewrite_body else None
        )
        self.finished = not self._wants_response
        return m.route_request_body(self._route_headers(decision), self._spoofed, new_body)

    def _route_headers(self, decision: Decision) -> list[tuple[str, str]]:
        assert decision.cluster is not None
        spec = self.snapshot.spec
        out = [(spec.route_header, decision.cluster), *decision.upstream_headers]
        rh = spec.response_headers
        if rh.set_by == "proxy" and rh.overhead_ms:  # the proxy copies it to the response
            spent = self._overhead + time.perf_counter() - self._phase_started
            out.append((OVERHEAD_MS, f"{spent * 1000:.2f}"))
        return out

    # -- response --------------------------------------------------------------------

    async def _on_response_headers(self, message: HttpHeaders) -> ProcessingResponse:
        decision = self.decision
        if decision is None:
            self.finished = True
            return m.continue_response_headers()
        status_text = _header(message, ":status")
        self._upstream_status = int(status_text) if status_text.isdigit() else 0
        await self.runtime.record_status(decision, self._upstream_status)
        headers = list(decision.response_headers)
        if self.snapshot.spec.response_headers.overhead_ms:
            headers.append((OVERHEAD_MS, f"{self._overhead * 1000:.2f}"))
        mode = await self._read_mode(decision, message)
        self.finished = mode is None  # the body is not read: nothing more comes
        return m.continue_response_headers(headers, mode)

    async def _read_mode(self, decision: Decision, message: HttpHeaders) -> ProcessingMode | None:
        """Whether to read the response body: for usage, and for a cache miss to store."""
        parsed = self._parsed
        ticket = decision.cache.ticket if decision.cache is not None else None
        if self._upstream_status != 200 or parsed is None:
            if ticket is not None:
                await self.runtime.store_answer(decision, "status")
            return None
        if ticket is not None:
            self._capture = ResponseCapture(
                stream=parsed.stream,
                encoding=_header(message, "content-encoding").decode("latin-1"),
                max_bytes=ticket.spec.max_entry_bytes,
                prompt_tokens=parsed.prompt_tokens,
            )
        if not decision.accounting and self._capture is None:
            return None
        if not parsed.stream:
            return _READ_JSON_MODE
        if decision.accounting:
            self._stream = StreamUsageParser(strip_usage=decision.strip_usage_chunk)
        return _READ_STREAM_MODE

    async def _on_response_body(self, message: HttpBody) -> ProcessingResponse:
        decision, parsed = self.decision, self._parsed
        # A buffered (BUFFERED_PARTIAL) body comes as one message, complete or not; a
        # streamed one ends with end_of_stream.
        self.finished = message.end_of_stream or parsed is None or not parsed.stream
        if decision is None or parsed is None:
            return m.continue_response_body()
        capture = self._capture
        if capture is not None:
            capture.feed(message.body)
            if message.end_of_stream or capture.done:
                self._capture = None
                await self.runtime.store_answer(decision, capture.finish())
        parser = self._stream
        if parser is None:
            if not decision.accounting:
                return m.continue_response_body()
            # Buffered JSON (BUFFERED_PARTIAL): the whole body, or, past Envoy's buffer
            # limit, only its head (end_of_stream false) while the rest streams on to the
            # client unseen. No usage then: the estimate stands, the response is untouched.
            usage = usage_from_json(message.body) if message.end_of_stream else None
            await self._account(
                usage or Usage(parsed.prompt_tokens, 0, parsed.prompt_tokens, estimated=True)
            )
            return m.continue_response_body()
        out = parser.feed(message.body)
        if message.end_of_stream:
            tail = parser.finish()
            if tail:
                out = out + tail
            await self._account(parser.result(parsed.prompt_tokens))
        return m.continue_response_body(None if out is message.body else out)

    async def _account(self, usage: Usage) -> None:
        assert self.decision is not None
        await self.runtime.record_usage(self.decision, usage, self._upstream_status)

    # -- failures ----------------------------------------------------------------------

    def on_failure(self, phase: str | None) -> ProcessingResponse:
        """The answer when handling a phase raised: per the configured failure mode.

        Response phases always continue: the answer is already on its way to the
        client. Request phases: fail-open routes to the default backend (client
        routing headers still stripped), fail-closed refuses with a 500 OpenAI error.
        """
        if phase == "response_headers":
            return m.continue_response_headers()
        if phase == "response_body":
            return m.continue_response_body()
        if self.snapshot.spec.failure_mode is FailureMode.CLOSED or phase not in (
            "request_headers",
            "request_body",
        ):
            self.finished = True
            return m.immediate(internal_error(), "routeiq_internal_error")
        decision = self.decision = fail_open_decision(
            self.snapshot, self._parsed.model if self._parsed else "", "internal error, failed open"
        )
        self.runtime.observe(decision, self._parsed, 0.0, self.snapshot, self._headers)
        if phase == "request_headers":
            self.finished, self._wants_response = False, True
            return m.continue_request_headers(self._spoofed, _BUFFER_WITH_RESPONSE_MODE)
        self.finished = not self._wants_response
        return m.route_request_body(self._route_headers(decision), self._spoofed, None)
