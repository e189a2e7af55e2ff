"""Drive one fuzz case through the real ext_proc ``Processor`` and check its answers.

The phases follow what Envoy does with the shipped filter config (static mode: request
headers SEND, request body BUFFERED, response headers SKIP; ``allow_mode_override``):
the request headers always; the body, in one buffered message, only when the answer
to the headers asked for it; the response headers and body only when asked. Every
answer is checked against the properties a policy enforcement point must keep for
any input (``check_*``); a violation is a line of text naming the case.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from envoy.config.core.v3.base_pb2 import HeaderMap, HeaderValue
from envoy.extensions.filters.http.ext_proc.v3.processing_mode_pb2 import ProcessingMode
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HeaderMutation,
    HttpBody,
    HttpHeaders,
    ProcessingRequest,
    ProcessingResponse,
)

from extproc.runtime import Runtime
from extproc.server.processor import Processor
from tests.security.fuzz_cases import SPOOF, Case

# A refusal repeats at most this much of what the client sent (bounded echo).
MAX_ERROR_BODY = 4096
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
# Below the prefix, only these may pass without a decision (the default passthrough
# rules: GET/HEAD of the model list).
_READ_ONLY = frozenset({"GET", "HEAD"})


@dataclass(slots=True)
class Tally:
    """What a fuzz run saw: outcomes, violations, the slowest case."""

    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    exceptions: int = 0
    max_s: float = 0.0
    slowest: str = ""
    max_cpu_s: float = 0.0
    most_cpu: str = ""

    def add(
        self, case: Case, outcome: str, problems: list[str], elapsed_s: float, cpu_s: float
    ) -> None:
        """Count one case; ``cpu_s`` is the CPU time of the event loop's thread."""
        self.cases += 1
        self.outcomes[outcome] += 1
        self.violations.extend(f"{case.label}: {p}" for p in problems)
        self.exceptions += sum(p.startswith("exception") for p in problems)
        if elapsed_s > self.max_s:
            self.max_s, self.slowest = elapsed_s, case.label
        if cpu_s > self.max_cpu_s:
            self.max_cpu_s, self.most_cpu = cpu_s, case.label


def _header_map(case: Case) -> HttpHeaders:
    pseudo = [(":method", case.method.encode()), (":path", case.path.encode("utf-8", "replace"))]
    headers = [HeaderValue(key=k, raw_value=v) for k, v in (*pseudo, *case.headers)]
    return HttpHeaders(headers=HeaderMap(headers=headers), end_of_stream=not case.body)


def _response_headers(case: Case) -> HttpHeaders:
    values = [
        (":status", str(case.upstream_status).encode()),
        ("content-type", b"application/json"),
    ]
    return HttpHeaders(
        headers=HeaderMap(headers=[HeaderValue(key=k, raw_value=v) for k, v in values])
    )


# -- properties ----------------------------------------------------------------------------


def check_mutation(
    mutation: HeaderMutation, clusters: frozenset[str], route_header: str
) -> list[str]:
    """No spoofed value is set; the route header only ever names a configured cluster."""
    problems = []
    for option in mutation.set_headers:
        key, value = option.header.key, option.header.raw_value
        if SPOOF.encode() in value:
            problems.append(f"spoofed value set on {key!r}")
        if key.lower() == route_header and value.decode("utf-8", "replace") not in clusters:
            problems.append(f"route header set to unconfigured {value[:60]!r}")
    return problems


def check_removed(mutation: HeaderMutation, client_names: set[str]) -> list[str]:
    """Every client-sent ``x-routeiq-*`` (and route) header is removed from the request."""
    removed = {name.lower() for name in mutation.remove_headers}
    missing = sorted(client_names - removed)
    return [f"client headers not stripped: {missing}"] if missing else []


def check_refusal(response: ProcessingResponse) -> tuple[int, list[str]]:
    """An OpenAI-style JSON error with a 4xx status and a bounded body."""
    immediate = response.immediate_response
    status = int(immediate.status.code)
    problems = []
    if not 400 <= status < 500:
        problems.append(f"refusal status {status}")
    types = [
        h.header.raw_value for h in immediate.headers.set_headers if h.header.key == "content-type"
    ]
    if types != [b"application/json"]:
        problems.append(f"refusal content-type {types}")
    if len(immediate.body) > MAX_ERROR_BODY:
        problems.append(f"refusal body of {len(immediate.body)} bytes")
    try:
        error = json.loads(immediate.body)["error"]
        if not isinstance(error["message"], str) or not isinstance(error["type"], str):
            problems.append("refusal error without message/type strings")
    except (ValueError, KeyError, TypeError):
        problems.append(f"refusal body not an OpenAI error: {immediate.body[:80]!r}")
    return status, problems


def check_body_length(response: ProcessingResponse) -> list[str]:
    """A rewritten body carries its own ``content-length`` (Envoy rejects a mismatch)."""
    common = response.request_body.response
    if not common.HasField("body_mutation"):
        return []
    new_body = common.body_mutation.body
    lengths = [
        h.header.raw_value
        for h in common.header_mutation.set_headers
        if h.header.key == "content-length"
    ]
    if lengths != [str(len(new_body)).encode()]:
        return [f"body rewritten to {len(new_body)} bytes with content-length {lengths}"]
    return []


def _unescape(m: re.Match[str]) -> str:
    char = chr(int(m[1], 16))
    return char if char in _UNRESERVED else "/" if char in "/\\" else m[0]


def canonical_segments(target: str) -> list[str] | None:
    """The path as a lenient upstream reads it, or None if it is not origin-form (the
    contract in extproc/api/paths.py, written again here so that the check does not
    trust the code it checks)."""
    if "://" in target:
        target = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*", "", target, count=1)
    path = _ESCAPE.sub(_unescape, target.split("#", 1)[0].split("?", 1)[0]).replace("\\", "/")
    if not path.startswith("/"):
        return None
    segments: list[str] = []
    for raw in path.split("/"):
        segment = raw.split(";", 1)[0]
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment.lower())
    return segments


def check_no_bypass(case: Case, prefix: str) -> list[str]:
    """A request below the prefix passes undecided only as a read of the model list."""
    segments = canonical_segments(case.path)
    base = [s.lower() for s in prefix.split("/") if s]
    if segments is None or segments[: len(base)] != base:
        return []
    if case.method in _READ_ONLY and segments[len(base) : len(base) + 1] == ["models"]:
        return []
    return [f"{case.method} {case.path[:80]!r} passed through without a decision"]


def check_model_listing(response: ProcessingResponse, case: Case, prefix: str) -> list[str]:
    """RouteIQ answers 200 itself only to a read of the model list, with a list or a model."""
    segments = canonical_segments(case.path) or []
    base = [s.lower() for s in prefix.split("/") if s]
    if case.method not in _READ_ONLY or segments[len(base) : len(base) + 1] != ["models"]:
        return [f"200 answered by RouteIQ to {case.method} {case.path[:80]!r}"]
    try:
        kind = json.loads(response.immediate_response.body)["object"]
    except (ValueError, KeyError, TypeError):
        kind = None
    return [] if kind in ("list", "model") else [f"model listing without a list: {kind!r}"]


# -- one case ----------------------------------------------------------------------------


@dataclass(slots=True)
class Driver:
    """Runs cases against one runtime; ``run`` returns the outcome name and violations."""

    runtime: Runtime
    clusters: frozenset[str] = frozenset()
    route_header: str = ""
    prefix: str = ""

    def __post_init__(self) -> None:
        spec = self.runtime.snapshot.spec
        self.clusters = frozenset(b.cluster for b in spec.backends)
        self.route_header = spec.route_header
        self.prefix = spec.path_prefix

    async def run(self, case: Case) -> tuple[str, list[str]]:
        processor = Processor(self.runtime)
        errors_before = Counter(self.runtime.stats.errors)
        problems: list[str] = []
        try:
            outcome = await self._phases(processor, case, problems)
        except Exception as exc:  # the servicer's failure path: must never be taken
            return "exception", [f"exception {type(exc).__name__}: {str(exc)[:200]}"]
        decision = processor.decision
        if decision is not None and decision.policy_unavailable:
            problems.append("policy engine unavailable for this input")
        counted = Counter(self.runtime.stats.errors) - errors_before
        internal = sorted(k for k in counted if not k.startswith("analysis_"))
        if internal:
            problems.append(f"internal errors counted: {internal}")
        return outcome, problems

    async def _phases(self, processor: Processor, case: Case, problems: list[str]) -> str:
        client_names = case.client_routeiq_names(self.route_header)
        first = await processor.handle(ProcessingRequest(request_headers=_header_map(case)))
        if first.HasField("immediate_response") and first.immediate_response.status.code == 200:
            problems.extend(check_model_listing(first, case, self.prefix))
            return "models listed at headers"
        if first.HasField("immediate_response"):
            status, found = check_refusal(first)
            problems.extend(found)
            return f"refused {status} at headers"
        common = first.request_headers.response
        problems.extend(check_mutation(common.header_mutation, self.clusters, self.route_header))
        problems.extend(check_removed(common.header_mutation, client_names))
        mode = first.mode_override if first.HasField("mode_override") else None
        body_mode = mode.request_body_mode if mode is not None else ProcessingMode.BUFFERED
        if body_mode != ProcessingMode.BUFFERED or not case.body:
            problems.extend(check_no_bypass(case, self.prefix))
            return "passthrough"
        message = ProcessingRequest(request_body=HttpBody(body=case.body, end_of_stream=True))
        second = await processor.handle(message)
        if second.HasField("immediate_response"):
            status, found = check_refusal(second)
            problems.extend(found)
            return f"refused {status}"
        body_common = second.request_body.response
        problems.extend(
            check_mutation(body_common.header_mutation, self.clusters, self.route_header)
        )
        problems.extend(check_removed(body_common.header_mutation, client_names))
        problems.extend(check_body_length(second))
        routed = {h.header.key for h in body_common.header_mutation.set_headers}
        if self.route_header not in routed:
            problems.append("body accepted without a route header")
        if mode is not None and mode.response_header_mode == ProcessingMode.SEND:
            await self._response(processor, case, problems)
        return "routed"

    async def _response(self, processor: Processor, case: Case, problems: list[str]) -> None:
        answer = await processor.handle(ProcessingRequest(response_headers=_response_headers(case)))
        if answer.HasField("immediate_response"):
            problems.append("immediate response in the response phase")
            return
        problems.extend(
            check_mutation(answer.response_headers.response.header_mutation, self.clusters, "")
        )
        mode = answer.mode_override if answer.HasField("mode_override") else None
        if mode is None or mode.response_body_mode == ProcessingMode.NONE:
            return
        body = case.upstream_body
        if mode.response_body_mode == ProcessingMode.STREAMED and len(body) > 1:
            half = len(body) // 2
            chunks = [(body[:half], False), (body[half:], True)]
        else:
            chunks = [(body, True)]
        for chunk, last in chunks:
            message = ProcessingRequest(response_body=HttpBody(body=chunk, end_of_stream=last))
            reply = await processor.handle(message)
            if reply.HasField("immediate_response"):
                problems.append("immediate response to a response body")


async def run_cases(driver: Driver, cases: Iterable[Case]) -> Tally:
    """Run every case, timing each one (wall time and the loop thread's CPU time:
    reported, never asserted)."""
    tally = Tally()
    for case in cases:
        started, cpu = time.perf_counter(), time.thread_time()
        outcome, problems = await driver.run(case)
        tally.add(case, outcome, problems, time.perf_counter() - started, time.thread_time() - cpu)
    return tally
