"""The immutable result of one routing decision, shared by every adapter."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.api.errors import ApiError
from extproc.state import Reservation


class Outcome(enum.StrEnum):
    ROUTED = "routed"  # forward to ``backend`` with the mutations below
    DENIED = "denied"  # answer ``error`` without reaching a backend
    FAILED_OPEN = "failed_open"  # a dependency failed; routed to the default backend anyway


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything an adapter needs to tell the proxy what to do, and why.

    ``upstream_headers`` are set on the request to the backend, ``response_headers``
    on the response to the client. ``body_overrides`` are top-level fields to replace
    in the request body (``model``, and ``stream_options`` when RouteIQ asks a stream
    for its usage); empty means the body goes upstream untouched. ``accounting`` says
    whether the adapter should read the response's usage (token budgets to reconcile,
    or the operator asked for usage metrics); ``strip_usage_chunk`` that the usage
    chunk RouteIQ asked for must not reach the client. ``explain`` is the structured
    reasoning (profile, classification, policy, candidates) for logs, spans and
    ``routeiq explain``; it is built once and never read on the hot path.
    """

    id: str
    outcome: Outcome
    config_version: str
    requested_model: str
    profile: str | None = None
    backend: str | None = None
    cluster: str | None = None
    upstream_model: str | None = None
    body_overrides: Mapping[str, Any] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()
    error: ApiError | None = None
    category: str | None = None
    tier: str | None = None
    strategy: str | None = None
    variant: str | None = None
    reasons: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    upstream_headers: tuple[tuple[str, str], ...] = ()
    response_headers: tuple[tuple[str, str], ...] = ()
    accounting: bool = False
    strip_usage_chunk: bool = False
    prompt_tokens: int = 0
    reservation: Reservation | None = None
    explain: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENIED

    @property
    def rewrite_body(self) -> bool:
        """Whether the adapter must send a new body (``patch_body(body, decision)``)."""
        return bool(self.body_overrides)
