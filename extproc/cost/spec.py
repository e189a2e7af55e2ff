"""The ``spec.costAccounting`` section of the RoutingConfig: what savings are measured against.

Prices themselves live on each backend (``cost``); this section names the reference
a request's counterfactual cost is computed at, and bounds the ``team`` label of the
cost metrics. See ``extproc.cost.accountant`` for how both are applied.
"""

from __future__ import annotations

from pydantic import Field

from extproc.config.base import Spec


class CostAccountingSpec(Spec):
    """What a routed request's counterfactual cost is priced at, and how teams are labelled.

    Without ``referenceBackend`` the reference of each request is the most expensive
    backend that could have served what it asked for: for an explicit model (or
    alias), the backends serving that name; for a profile (``auto``, ``eco``...),
    every backend. "Most expensive" is judged at the request's own token usage.
    Costs are only known for requests whose usage RouteIQ reads
    (``usageAccounting``: ``always``, or ``auto`` with a token budget).
    """

    reference_backend: str | None = Field(
        None,
        description="Backend every request's counterfactual cost is priced at; unset: the "
        "most expensive backend serving the requested model or profile.",
    )
    teams: tuple[str, ...] = Field(
        (),
        description="Teams that get their own `team` label on cost metrics; others are "
        "'other'. Empty: the first `maxTeams` teams seen by the process.",
    )
    max_teams: int = Field(
        20,
        ge=0,
        le=1000,
        description="Without `teams`: distinct team labels per process before 'other'.",
    )
