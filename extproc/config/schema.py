"""The ``RoutingConfig`` resource that mesh operators apply (YAML, validated by pydantic).

Sections owned by a subsystem live next to it (``policy.spec``, ``routing.spec``,
``state.spec``) and are assembled here, so each subsystem validates its own part.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from extproc.api.identity import IdentitySpec
from extproc.api.paths import DEFAULT_PASSTHROUGH, PassthroughPath
from extproc.cache.spec import CacheSpec
from extproc.config.backend import Backend, Cost, KongTarget, ServedModel
from extproc.config.base import Spec
from extproc.cost.spec import CostAccountingSpec
from extproc.policy.spec import PolicySpec
from extproc.routing.spec import RoutingSpec
from extproc.state.spec import StateSpec
from extproc.vocabulary import TIERS, FailureMode, Tier

# Re-exported: the vocabulary and the backend types are part of the resource.
__all__ = ["TIERS", "Backend", "Cost", "FailureMode", "KongTarget", "ServedModel", "Tier"]


class ResponseHeaders(Spec):
    """Decision headers added to the response the client sees.

    ``setBy`` says who writes them. ``routeiq`` (the default, right for any proxy):
    RouteIQ adds them when it answers the response headers, one more ext_proc message
    per request. ``proxy``: RouteIQ puts them on the request it routes and the proxy
    copies them from the request to the client's response (the shipped Envoy configs'
    ``response_headers_to_add`` with ``%REQ(...)%``), so a request needs no response
    phase for them; only choose it when the proxy's config does that copy.
    """

    backend: bool = True
    decision_id: bool = True
    overhead_ms: bool = True
    set_by: Literal["routeiq", "proxy"] = Field(
        "routeiq",
        description="routeiq = added in the response phase (one more ext_proc message); "
        "proxy = put on the routed request for the proxy to copy to the response.",
    )

    @property
    def needs_response_phase(self) -> bool:
        """Whether RouteIQ must see the response headers to write these headers."""
        return self.set_by == "routeiq" and (self.backend or self.decision_id or self.overhead_ms)


class Metadata(Spec):
    name: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)


class RoutingConfigSpec(Spec):
    route_header: str = Field(
        "x-routeiq-cluster",
        pattern=r"^x-[a-z0-9-]+$",
        description="Header RouteIQ sets for the proxy's route table (clear_route_cache).",
    )
    path_prefix: str = Field(
        "/v1",
        pattern=r"^/[A-Za-z0-9/_-]*[^/]$",
        description="Prefix of the OpenAI paths; paths outside it pass through untouched, "
        "unknown paths below it are refused (404/405) unless passthroughPaths names them.",
    )
    passthrough_paths: tuple[PassthroughPath, ...] = Field(
        DEFAULT_PASSTHROUGH,
        description="Paths below pathPrefix forwarded without a decision: {path, methods}, "
        "path relative to the prefix ('models', 'files/*', '*'). Never applies to POST on "
        "an inference endpoint.",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, gt=0, description="Larger request bodies get a 413."
    )
    failure_mode: FailureMode = Field(
        FailureMode.CLOSED,
        description="A bug while deciding: closed answers 500, open routes to defaultBackend.",
    )
    backends: tuple[Backend, ...] = Field(min_length=1, description="Where requests can go.")
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Extra public model names -> a served model name."
    )
    default_backend: str | None = Field(
        None, description="Fail-open target; the first backend when unset."
    )
    ranker: str = Field(
        "tier-cost",
        min_length=1,
        description="How usable backends are ordered: tier-cost (needed tier first, then "
        "expected cost of the request), cost (cheapest at or above the needed tier), or a "
        "ranker from the routeiq.rankers entry-point group.",
    )
    response_headers: ResponseHeaders = ResponseHeaders()
    usage_accounting: Literal["auto", "always", "off"] = Field(
        "auto",
        description="Read token usage from responses: auto = when a token budget applies, "
        "always = every routed request (usage metrics, decision log), off = never.",
    )
    identity: IdentitySpec = IdentitySpec()
    routing: RoutingSpec = RoutingSpec()
    policy: PolicySpec = PolicySpec()
    state: StateSpec = StateSpec()
    cost_accounting: CostAccountingSpec = CostAccountingSpec()
    cache: CacheSpec = CacheSpec()

    @model_validator(mode="after")
    def _consistent(self) -> RoutingConfigSpec:
        names = [b.name for b in self.backends]
        reference = self.cost_accounting.reference_backend
        if reference is not None and reference not in names:
            raise ValueError(f"costAccounting.referenceBackend '{reference}' is not a backend")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"backend names must be unique; repeated: {dupes}")
        if self.default_backend is not None and self.default_backend not in names:
            raise ValueError(f"defaultBackend '{self.default_backend}' is not a backend")
        served = {m.name for b in self.backends for m in b.models}
        for alias, target in self.aliases.items():
            if target not in served:
                raise ValueError(f"alias '{alias}' points at '{target}', which no backend serves")
        return self


class RoutingConfig(Spec):
    """The whole resource, Kubernetes style."""

    api_version: Literal["routeiq.dev/v1alpha1"] = "routeiq.dev/v1alpha1"
    kind: Literal["RoutingConfig"] = "RoutingConfig"
    metadata: Metadata = Metadata()
    spec: RoutingConfigSpec
