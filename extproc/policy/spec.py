"""The ``spec.policy`` section of the RoutingConfig."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from extproc.config.base import Spec


class PolicySpec(Spec):
    """Which Rego engine decides, what it loads, and what happens when it fails."""

    engine: Literal["none", "embedded", "opa"] = "none"
    query: str = "data.routeiq.decision"
    modules: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    failure_mode: Literal["open", "closed"] = "closed"
    deny_status: int = Field(403, ge=400, le=599)
