"""Fuzz cases over a real socket to Envoy, and what the upstream says it received.

``send`` writes a case as raw HTTP/1.1 bytes (no client library normalises the path,
the header names or the bytes of their values) with ``connection: close`` and reads
until Envoy closes. The request carries ``x-fuzz-id`` so that a request recorded by a
demo backend (``GET /__received``) can be matched to its case. ``upstream_problems``
names what a request should never carry when it reaches a backend.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.security.fuzz_cases import ROUTE_HEADER, SPOOF, Case

FUZZ_ID = "x-fuzz-id"
DECISION_ID = "x-routeiq-decision-id"


@dataclass(frozen=True, slots=True)
class Reply:
    """Envoy's answer: ``status`` 0 when none came within the timeout (a hang)."""

    status: int
    code: str | None
    elapsed_s: float


def request_bytes(case: Case) -> bytes:
    """The case as HTTP/1.1: pseudo-headers become the request line and ``host``; the
    body always gets its true length (a wrong one only makes the socket wait)."""
    lines = [f"{case.method} {case.path} HTTP/1.1".encode("utf-8", "surrogatepass")]
    lines.append(b"host: gw")
    for name, value in case.headers:
        if name.startswith(":") or name.lower() in ("content-length", "host", "connection"):
            continue
        lines.append(name.encode() + b": " + value)
    lines.append(f"{FUZZ_ID}: {case.index}".encode())
    lines.append(f"content-length: {len(case.body)}".encode())
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + case.body


def _error_code(body: bytes) -> str | None:
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


def _body_complete(head: bytes, body: bytes, method: str) -> bool:
    """Whether the whole response is in: by ``content-length`` or the last chunk (Envoy
    may hold a closing connection open for a while, so EOF is not waited for)."""
    status_line, _, fields = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if method == "HEAD" or (len(parts) > 1 and parts[1] in (b"204", b"304")):
        return True
    for line in fields.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value.strip())
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return body.endswith(b"0\r\n\r\n")
    return False


def read_reply(sock: socket.socket, method: str) -> tuple[bytes, bytes]:
    """The response head and body, read until complete or until the peer closes."""
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
        head, sep, body = raw.partition(b"\r\n\r\n")
        if sep and _body_complete(head, body, method):
            return head, body
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def send(port: int, case: Case, timeout_s: float = 30.0) -> Reply:
    started = time.perf_counter()
    head = body = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(request_bytes(case))
            head, body = read_reply(sock, case.method)
    except TimeoutError:
        return Reply(0, None, time.perf_counter() - started)
    except ConnectionError:
        pass  # Envoy may reset a connection it refused; what was read still counts
    parts = head.split(b" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
    return Reply(status, _error_code(body), time.perf_counter() - started)


def upstream_problems(
    entry: Mapping[str, Any], cluster: str, cases: Mapping[int, Case], default_cluster: str
) -> list[str]:
    """What is wrong with one request a backend of ``cluster`` received.

    A spoofed value anywhere; a RouteIQ header on a request RouteIQ did not decide (no
    decision id); a route header naming another cluster; or the request landing on the
    cluster its client asked for while RouteIQ never decided it.
    """
    headers: Mapping[str, str] = entry.get("headers", {})
    problems = [f"spoofed value in {k}" for k, v in headers.items() if SPOOF in v]
    decided = DECISION_ID in headers
    planted = sorted(k for k in headers if k.startswith("x-routeiq-") and not decided)
    if planted:
        problems.append(f"undecided request carries {planted}")
    route = headers.get(ROUTE_HEADER)
    if route is not None and route != cluster:
        problems.append(f"{ROUTE_HEADER}={route} received by {cluster}")
    fuzz_id = headers.get(FUZZ_ID, "")
    case = cases.get(int(fuzz_id)) if fuzz_id.isdigit() else None
    if case is not None and not decided and cluster != default_cluster:
        asked = {v.decode("latin-1") for k, v in case.headers if k.lower() == ROUTE_HEADER}
        if cluster in asked:
            problems.append(f"client's {ROUTE_HEADER}={cluster} honoured without a decision")
    return problems
