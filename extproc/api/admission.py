"""The admission front door: the checks every adapter runs before a body is parsed.

The ext_proc processor and the Kong plugin call the same functions, so a request is
admitted, refused or passed through by one rule whatever proxy carries it:

* which client headers must go: every ``x-routeiq-*`` name and the route header;
* what the path is (``extproc.api.paths``): an inference endpoint, a passthrough, a
  refusal, or the model list RouteIQ answers itself from the config;
* for inference requests, the cheap header checks (JSON content type, declared size)
  and, once the body is in, its size and emptiness.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from extproc.api.errors import ApiError, bad_request, too_large, unsupported_media_type
from extproc.api.models_list import Reply, models_reply
from extproc.api.paths import PathMatch, Route, match_request
from extproc.config.schema import RoutingConfigSpec
from extproc.headers import PREFIX


@dataclass(frozen=True, slots=True)
class Admission:
    """The verdict on a request's headers.

    ``spoofed``: client headers to remove on every path. ``listing``: the model list
    to answer with (``GET /v1/models``). ``error``: the refusal. Otherwise ``match``
    says whether the body must be decided (``INFERENCE``) or passes untouched.
    """

    match: PathMatch
    spoofed: tuple[str, ...]
    listing: Reply | None = None
    error: ApiError | None = None

    @property
    def inference(self) -> bool:
        return self.error is None and self.listing is None and self.match.route is Route.INFERENCE


def spoofed_headers(names: Iterable[str], route_header: str) -> tuple[str, ...]:
    """Client header names RouteIQ never trusts (lower-case names in, as given out)."""
    return tuple(k for k in names if k.startswith(PREFIX) or k == route_header)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def admit_path(method: str, target: str, spec: RoutingConfigSpec) -> Admission:
    """The path's verdict alone (``spoofed`` still empty): for adapters that pay a round
    trip per header read and can answer a refused path or the model list before it."""
    match = match_request(method, target, spec.path_prefix, spec.passthrough_paths)
    if match.route is not Route.INFERENCE:
        listing = models_reply(spec, method, target)
        return Admission(match, (), listing, None if listing else match.error)
    return Admission(match, ())


def admit_headers(
    verdict: Admission, headers: Mapping[str, str], spec: RoutingConfigSpec
) -> Admission:
    """The path's verdict completed with the headers: what to strip, and for an
    inference call the content type and declared size."""
    spoofed = spoofed_headers(headers, spec.route_header)
    if not verdict.inference:
        return Admission(verdict.match, spoofed, verdict.listing, verdict.error)
    if not is_json(headers.get("content-type", "")):
        error = unsupported_media_type("Content-Type must be application/json for OpenAI requests.")
        return Admission(verdict.match, spoofed, error=error)
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > spec.max_body_bytes:
        return Admission(verdict.match, spoofed, error=too_large(spec.max_body_bytes))
    return Admission(verdict.match, spoofed)


def admit(
    method: str, target: str, headers: Mapping[str, str], spec: RoutingConfigSpec
) -> Admission:
    """Path, spoofed headers, model list and the header checks of an inference call."""
    return admit_headers(admit_path(method, target, spec), headers, spec)


def check_body(size: int, spec: RoutingConfigSpec, *, complete: bool = True) -> ApiError | None:
    """The body's own refusals: too large (also while it is still arriving), or empty."""
    if size > spec.max_body_bytes:
        return too_large(spec.max_body_bytes)
    if complete and size == 0:
        return empty_body()
    return None


def empty_body() -> ApiError:
    return bad_request("The request body is empty; expected a JSON object.")
