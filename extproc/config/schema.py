"""The ``RoutingConfig`` resource that mesh operators apply (YAML, validated by pydantic).

Sections owned by a subsystem live next to it (``policy.spec``, ``routing.spec``,
``state.spec``) and are assembled here, so each subsystem validates its own part.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from extproc.api.identity import IdentitySpec
from extproc.api.paths import DEFAULT_PASSTHROUGH, PassthroughPath
from extproc.cache.spec import CacheSpec
from extproc.config.base import Spec
from extproc.cost.spec import CostAccountingSpec
from extproc.policy.spec import PolicySpec
from extproc.routing.spec import RoutingSpec
from extproc.state.spec import StateSpec
from extproc.vocabulary import TIERS, FailureMode, Tier

__all__ = ["TIERS", "FailureMode", "Tier"]  # re-exported: the vocabulary of the resource


class Cost(Spec):
    input_per_m_tok: float = Field(0.0, ge=0)
    output_per_m_tok: float = Field(0.0, ge=0)
    cached_input_per_m_tok: float | None = Field(
        None, ge=0, description="Price of prompt-cache hits; unset: the input price."
    )

    def estimate(self, prompt_tokens: int, output_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m_tok + output_tokens * self.output_per_m_tok) / 1e6


class ServedModel(Spec):
    """A model a backend serves: the public name clients use and the upstream's own name."""

    name: str = Field(min_length=1)
    upstream: str | None = None
    reasoning: bool = Field(
        False,
        description="A reasoning model (o1/o3, DeepSeek-R1...): serves the reasoning profile "
        "on this backend instead of the first model; the backend must list the reasoning "
        "capability.",
    )

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.name


class KongTarget(Spec):
    """How the Kong plugin reaches this backend: a Kong upstream, or a host and port."""

    upstream: str | None = None
    host: str | None = None
    port: int | None = Field(None, ge=1, le=65535)

    @model_validator(mode="after")
    def _one_way(self) -> KongTarget:
        if (self.upstream is None) == (self.host is None):
            raise ValueError("set exactly one of 'upstream' or 'host' (with 'port')")
        if self.host is not None and self.port is None:
            raise ValueError("'host' needs 'port'")
        return self


class Backend(Spec):
    """One place the proxy can send a request: an Envoy cluster serving some models."""

    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Unique name; appears in x-routeiq-backend, policies and metrics.",
    )
    cluster: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Value of the route header; the proxy's route table maps it to a cluster.",
    )
    models: tuple[ServedModel, ...] = Field(
        min_length=1,
        description="Models served: names, or {name, upstream} when the backend's own name "
        "differs. The first one serves auto/profile requests (reasoning: the model marked "
        "reasoning).",
    )
    tier: Tier = Field(Tier.STANDARD, description="free < eco < standard < premium.")
    cost: Cost = Field(Cost(), description="USD per million input/output tokens.")
    context_window: int = Field(128_000, gt=0, description="Max prompt + output tokens.")
    capabilities: frozenset[str] = Field(
        frozenset({"tools", "json", "streaming"}),
        description="What requests may need: tools, json, vision, reasoning, streaming.",
    )
    in_cluster: bool = Field(
        False, description="Runs inside the cluster (confidential traffic may go here)."
    )
    provider: str = Field("openai", description="gen_ai.provider.name in telemetry.")
    kong: KongTarget | None = Field(None, description="How the Kong plugin reaches it.")

    @field_validator("models", mode="before")
    @classmethod
    def _names_as_models(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return tuple({"name": v} if isinstance(v, str) else v for v in value)
        return value

    @model_validator(mode="after")
    def _reasoning_capability(self) -> Backend:
        marked = [m.name for m in self.models if m.reasoning]
        if marked and "reasoning" not in self.capabilities:
            raise ValueError(
                f"model '{marked[0]}' is marked reasoning: add 'reasoning' to the backend's "
                "capabilities"
            )
        return self

    @property
    def default_model(self) -> ServedModel:
        """The model used when the client did not name one of this backend's models."""
        return self.models[0]


class ResponseHeaders(Spec):
    """Decision headers added to the response the client sees."""

    backend: bool = True
    decision_id: bool = True
    overhead_ms: bool = True


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
