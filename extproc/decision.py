"""The immutable result of one routing decision, shared by every adapter.

Importing this module loads no I/O client, engine or model runtime: the typed results
it carries (caller, classification, policy) are referenced for type checking only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from extproc.api.errors import ApiError
from extproc.explain_doc import explain_document

if TYPE_CHECKING:
    from extproc.api.identity import Caller
    from extproc.cache.types import CacheResult
    from extproc.policy.result import PolicyResult
    from extproc.routing.router import Classification
    from extproc.state.types import Reservation

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Outcome(enum.StrEnum):
    ROUTED = "routed"  # forward to ``backend`` with the mutations below
    DENIED = "denied"  # answer ``error`` without reaching a backend
    FAILED_OPEN = "failed_open"  # a dependency failed; routed to the default backend anyway
    CACHED = "cached"  # answered from the answer cache: ``cache.body``, status 200


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything an adapter needs to tell the proxy what to do, and why.

    ``upstream_headers`` are set on the request to the backend, ``response_headers``
    on the response to the client. ``body_overrides`` are top-level fields to replace
    in the request body (``model``, and ``stream_options`` when RouteIQ asks a stream
    for its usage); empty means the body goes upstream untouched. ``accounting`` says
    whether the adapter should read the response's usage (token budgets to reconcile,
    or the operator asked for usage metrics); ``strip_usage_chunk`` that the usage
    chunk RouteIQ asked for must not reach the client.

    ``tier`` is the tier of the backend that serves the request; ``needed_tier`` the
    tier the request needed (profile, classification, cost-quality bar). The typed
    stage results (``caller``, ``classification``, ``policy``, ``findings``,
    ``excluded``...) say why; :attr:`explain` renders them as a document for the
    places that show it (admin, CLI, decision log) and is never built on the hot path.
    ``degraded`` names what was skipped to protect the service (e.g.
    ``analysis_timeout``), for metrics.
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
    needed_tier: str | None = None
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
    caller: Caller | None = None
    classification: Classification | None = None
    policy: PolicyResult | None = None
    findings: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    excluded: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    affinity: str | None = None  # the backend a session pin moved to the front
    expected_costs: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    budget_refused_by: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()
    decide_ms: float = 0.0
    cache: CacheResult | None = None  # the cache stage's result (None: no cache configured)

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENIED

    @property
    def rewrite_body(self) -> bool:
        """Whether the adapter must send a new body (``patch_body(body, decision)``)."""
        return bool(self.body_overrides)

    @property
    def policy_unavailable(self) -> bool:
        """The policy engine could not answer and its failure mode decided."""
        return self.policy is not None and self.policy.engine_unavailable

    @property
    def explain(self) -> Mapping[str, Any]:
        """The structured reasoning as a JSON-ready document (built on each access)."""
        doc = explain_document(self)
        if self.cache is not None:
            doc["cache"] = self.cache.explain()
        return doc
