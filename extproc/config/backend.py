"""Backends and their prices: the part of the ``RoutingConfig`` the routing core reads.

A leaf of the config package: it imports only the spec base and the shared vocabulary,
so the selector, the rankers, cost accounting and the cache can name a ``Backend``
without importing the whole resource (and with it every subsystem's spec).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from extproc.config.base import Spec
from extproc.vocabulary import Tier


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
