"""The immutable result of one routing decision, shared by every adapter."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from extproc.api.errors import ApiError


class Outcome(enum.StrEnum):
    ROUTED = "routed"  # forward to ``backend`` with the mutations below
    DENIED = "denied"  # answer ``error`` without reaching a backend
    FAILED_OPEN = "failed_open"  # a dependency failed; routed to the default backend anyway


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything an adapter needs to tell the proxy what to do, and why.

    ``upstream_headers`` are set on the request to the backend, ``response_headers``
    on the response to the client. ``explain`` is the structured reasoning behind the
    decision (profile, classification, policy outcome, candidates) for decision logs,
    spans and ``routeiq explain``; it is built once and never read on the hot path.
    """

    id: str
    outcome: Outcome
    config_version: str
    requested_model: str
    profile: str | None = None
    backend: str | None = None
    cluster: str | None = None
    upstream_model: str | None = None
    rewrite_body: bool = False
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
    explain: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENIED
