"""What a request path means to RouteIQ, read the way a strict proxy reads it.

A policy enforcement point that compares paths as exact strings can be walked around:
``/v1/%63hat/completions``, ``/v1//chat/completions`` or ``/V1/chat/completions;x`` are
the chat endpoint to many upstreams but not to ``==``. So the matcher first brings the
request target to one canonical form, whatever the proxy in front did or did not do:

- an absolute-form target loses its ``scheme://authority``; query and fragment go;
- percent-encoded unreserved characters (RFC 3986 ``ALPHA DIGIT - . _ ~``) are decoded,
  ``%2F`` and ``%5C`` become ``/`` (as a lenient upstream would read them), every other
  escape stays encoded; ``\\`` is a ``/``; a malformed escape makes the path invalid;
- ``;params`` are dropped from every segment, dot segments are resolved, empty segments
  (doubled or trailing slashes) are removed;
- letters are compared without case.

Then every request falls in one of four classes (:class:`Route`):

- ``INFERENCE``: ``POST`` to an endpoint RouteIQ understands (:class:`Endpoint`) below
  ``spec.pathPrefix``. It is decided, and the upstream gets the canonical path.
- ``PASSTHROUGH``: below the prefix, not inference, and named by an operator rule
  (``spec.passthroughPaths``): forwarded untouched, no decision.
- ``OUTSIDE``: not below the prefix: forwarded untouched.
- ``REFUSED``: anything else below the prefix: 404 (unknown path), 405 (an inference
  endpoint with another method) or 400 (a path that cannot be read, or that still holds
  an encoded ``%`` after decoding: a double encoding that a second decoder upstream
  could turn into another path). Never routed to the default backend undecided.

A rule can never turn an inference call into a passthrough: ``POST`` to an endpoint is
always decided, so no config makes policy optional for it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import Field, field_validator

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint
from extproc.config.base import Spec

INFERENCE_METHOD = "POST"
# How much of a client's path an error message repeats (the rest is cut).
MAX_ECHO = 120

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
_ENDPOINTS = {e.value: e for e in Endpoint}
_RULE_PATH = r"^(\*|[A-Za-z0-9._~:@!$&'()+,=-]+(/[A-Za-z0-9._~:@!$&'()+,=-]+)*(/\*)?)$"


class Route(enum.Enum):
    INFERENCE = "inference"
    PASSTHROUGH = "passthrough"
    OUTSIDE = "outside"
    REFUSED = "refused"


class PassthroughPath(Spec):
    """A path below ``pathPrefix`` that RouteIQ lets through without a decision.

    ``path`` is relative to the prefix (``models`` means ``<pathPrefix>/models``) so
    that rules keep their meaning when the prefix changes: an exact path, a path ending
    in ``/*`` (everything strictly below it), or ``*`` (everything below the prefix
    that is not an inference call). Compared with the canonical request path, without
    case. ``methods``: the HTTP methods the rule admits.
    """

    path: str = Field(pattern=_RULE_PATH, description="Below pathPrefix: 'models', 'files/*'.")
    methods: frozenset[str] = Field(
        frozenset({"GET", "HEAD"}), min_length=1, description="HTTP methods the rule admits."
    )

    @field_validator("path")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return value.lower()

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(m for m in value if not re.fullmatch(r"[A-Z]+", m))
        if bad:
            raise ValueError(f"methods are upper-case HTTP method names; got {bad}")
        return value

    def admits(self, method: str, rest: str) -> bool:
        """Whether ``method`` on ``<prefix>/<rest>`` (canonical, lower-case) matches."""
        if method not in self.methods:
            return False
        if self.path == "*":
            return True
        if self.path.endswith("/*"):
            return rest.startswith(self.path[:-1])
        return rest == self.path


# Read-only, prompt-free, and called by every OpenAI SDK and proxy at start-up.
DEFAULT_PASSTHROUGH: tuple[PassthroughPath, ...] = (
    PassthroughPath(path="models"),
    PassthroughPath(path="models/*"),
)


@dataclass(frozen=True, slots=True)
class PathMatch:
    """What to do with one request: see :class:`Route`.

    ``endpoint`` and ``upstream_target`` (the canonical path plus the client's query,
    what the upstream should receive) are set for ``INFERENCE``; ``error`` for
    ``REFUSED``.
    """

    route: Route
    endpoint: Endpoint | None = None
    upstream_target: str = ""
    error: ApiError | None = None


def _unescape(m: re.Match[str]) -> str:
    char = chr(int(m[1], 16))
    if char in _UNRESERVED:
        return char
    if char in "/\\":
        return "/"
    return "%" + m[1].upper()


def split_target(target: str) -> tuple[str, str]:
    """``(path, query)`` of a request target; the fragment and any authority dropped."""
    if "://" in target:
        target = _ABSOLUTE.sub("", target, count=1)
    if "#" in target:
        target = target.split("#", 1)[0]
    path, _, query = target.partition("?")
    return path, query


def canonical_path(path: str) -> str | None:
    """The canonical, lower-case form of ``path`` (no query); None if it is not an
    origin-form path (``*``, empty). A malformed escape is kept as it is."""
    decoded = _ESCAPE.sub(_unescape, path).replace("\\", "/")
    if not decoded.startswith("/"):
        return None
    segments: list[str] = []
    for raw in decoded.split("/"):
        segment = raw.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment.lower())
    return "/" + "/".join(segments)


def _echo(method: str, path: str) -> str:
    shown = path if len(path) <= MAX_ECHO else path[:MAX_ECHO] + "..."
    return f"{method[:16]} {shown}"


def invalid_path() -> ApiError:
    return ApiError(
        400,
        "The request path cannot be read (malformed or doubly encoded escapes).",
        "invalid_request_error",
        "invalid_path",
    )


def unknown_path(method: str, path: str) -> ApiError:
    return ApiError(
        404,
        f"Invalid URL ({_echo(method, path)}): this gateway does not serve that path.",
        "invalid_request_error",
        "unknown_path",
    )


def method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(
        405,
        f"Invalid method ({_echo(method, path)}): use POST.",
        "invalid_request_error",
        "method_not_allowed",
        headers=(("allow", INFERENCE_METHOD),),
    )


def match_request(
    method: str,
    target: str,
    prefix: str = "/v1",
    passthrough: Iterable[PassthroughPath] = DEFAULT_PASSTHROUGH,
) -> PathMatch:
    """Classify one request (``:method``, ``:path``) under ``spec.pathPrefix``."""
    path, query = split_target(target)
    if method == INFERENCE_METHOD and path[len(prefix) : len(prefix) + 1] == "/":
        # The usual spelling, already canonical: no decoding needed.
        endpoint = _ENDPOINTS.get(path[len(prefix) + 1 :])
        if endpoint is not None and path.startswith(prefix):
            upstream = f"{path}?{query}" if query else path
            return PathMatch(Route.INFERENCE, endpoint, upstream)
    canonical = canonical_path(path)
    base = canonical_path(prefix) or prefix.lower()
    if canonical is None or (canonical != base and not canonical.startswith(base + "/")):
        return PathMatch(Route.OUTSIDE)
    rest = canonical[len(base) + 1 :]
    if "%25" in rest or _BAD_ESCAPE.search(path):
        return PathMatch(Route.REFUSED, error=invalid_path())
    endpoint = _ENDPOINTS.get(rest)
    if endpoint is not None and method == INFERENCE_METHOD:
        upstream = f"{prefix}/{endpoint.value}"
        return PathMatch(Route.INFERENCE, endpoint, f"{upstream}?{query}" if query else upstream)
    if any(rule.admits(method, rest) for rule in passthrough):
        return PathMatch(Route.PASSTHROUGH)
    if endpoint is not None:
        return PathMatch(Route.REFUSED, error=method_not_allowed(method, path))
    return PathMatch(Route.REFUSED, error=unknown_path(method, path))


def match_endpoint(path: str, prefix: str = "/v1") -> Endpoint | None:
    """The inference endpoint a ``POST`` to ``path`` names, or None (not inference)."""
    return match_request(INFERENCE_METHOD, path, prefix, ()).endpoint


__all__ = [
    "DEFAULT_PASSTHROUGH",
    "INFERENCE_METHOD",
    "PassthroughPath",
    "PathMatch",
    "Route",
    "canonical_path",
    "match_endpoint",
    "match_request",
    "split_target",
]
