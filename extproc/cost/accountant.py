"""Cost of each served request and what it would have cost at the reference backend.

``CostBook.price`` is called once per response whose usage is known (buffered JSON,
the end of an SSE stream, or an estimate when the backend reported none). It is off
the decision path but on the response path, so it only does dictionary lookups and a
handful of multiplications: the per-config tables (backends by name, candidates per
requested model) are built once per config version and kept for the last few
versions, so a response that outlives a reload is still priced with the config that
routed it.

Reference (the counterfactual):
- ``costAccounting.referenceBackend`` set: that backend, for every request. Savings
  are negative when it is cheaper than the backend that served.
- unset: the candidate with the highest cost at this request's usage, the backend
  that served included (ties keep it), so savings are never negative. Candidates are
  the backends serving the requested model name (an explicit model or an alias), or
  every backend for a profile (``auto``, ``eco``, ``premium``...: the resolve stage
  offers a profile all backends).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from extproc.api.usage import Usage
from extproc.cost.prices import Rates, rated_cost, rates

if TYPE_CHECKING:
    from extproc.config.snapshot import Snapshot
    from extproc.cost.spec import CostAccountingSpec
    from extproc.decision import Decision

NO_TEAM = "none"
OTHER_TEAM = "other"
TEAM_LABEL_CHARS = 64
_TABLES_KEPT = 4


class CostRecord(NamedTuple):
    """The priced response of one decision. ``saved_usd`` may be negative (see module).

    A named tuple: built once per response on the response path, where a frozen
    dataclass costs several times more to construct.
    """

    decision_id: str
    backend: str
    tier: str
    team: str | None  # as identified, for the decision log
    team_label: str  # bounded, for metric labels
    cost_usd: float
    counterfactual_usd: float
    reference_backend: str
    estimated: bool

    @property
    def saved_usd(self) -> float:
        return self.counterfactual_usd - self.cost_usd


class Priced(NamedTuple):
    """A backend as pricing sees it: name, tier and per-token rates."""

    name: str
    tier: str
    rates: Rates


@dataclass(frozen=True, slots=True)
class PriceTable:
    """What pricing needs from one config version, indexed once."""

    version: str
    backends: Mapping[str, Priced]
    by_model: Mapping[str, tuple[Priced, ...]]  # public model name or alias -> servers
    everyone: tuple[Priced, ...]
    reference: Priced | None
    teams: frozenset[str] | None  # allow-list; None: first ``max_teams`` seen
    max_teams: int

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> PriceTable:
        spec = snapshot.spec
        accounting: CostAccountingSpec = spec.cost_accounting
        priced = {b.name: Priced(b.name, b.tier.value, rates(b.cost)) for b in spec.backends}
        by_model = {
            name: tuple({r.backend.name: priced[r.backend.name] for r in routes}.values())
            for name, routes in snapshot.models.items()
        }
        ref = accounting.reference_backend
        return cls(
            version=snapshot.version,
            backends=priced,
            by_model=by_model,
            everyone=tuple(priced.values()),
            reference=priced.get(ref) if ref else None,
            teams=frozenset(accounting.teams) if accounting.teams else None,
            max_teams=accounting.max_teams,
        )

    def candidates(self, decision: Decision) -> tuple[Priced, ...]:
        """Backends that could have served what ``decision``'s request asked for."""
        if decision.profile is not None:
            return self.everyone
        return self.by_model.get(decision.requested_model, ())


def counterfactual(
    served: Priced, served_cost: float, candidates: tuple[Priced, ...], usage: Usage
) -> tuple[Priced, float]:
    """The most expensive of ``candidates`` and ``served`` at ``usage`` (ties: ``served``)."""
    best, best_cost = served, served_cost
    for backend in candidates:
        if backend is served:
            continue
        cost = rated_cost(backend.rates, usage)
        if cost > best_cost:
            best, best_cost = backend, cost
    return best, best_cost


class CostBook:
    """Prices responses for one process; survives reloads (keeps the team labels seen)."""

    def __init__(self) -> None:
        self._tables: OrderedDict[str, PriceTable] = OrderedDict()
        self._seen_teams: set[str] = set()

    def table(self, version: str, snapshot: Snapshot) -> PriceTable:
        """The table of config ``version``; the current snapshot's when it is unknown."""
        table = self._tables.get(version)
        if table is not None:
            return table
        table = self._tables.get(snapshot.version)
        if table is None:
            table = self._tables[snapshot.version] = PriceTable.from_snapshot(snapshot)
            if len(self._tables) > _TABLES_KEPT:
                self._tables.popitem(last=False)
        return table

    def team_label(self, team: str | None, table: PriceTable) -> str:
        """A bounded label: the allow-list, or the first ``max_teams`` seen; else 'other'."""
        if not team:
            return NO_TEAM
        team = team[:TEAM_LABEL_CHARS]
        if table.teams is not None:
            return team if team in table.teams else OTHER_TEAM
        if team in self._seen_teams:
            return team
        if len(self._seen_teams) < table.max_teams:
            self._seen_teams.add(team)
            return team
        return OTHER_TEAM

    def price(self, decision: Decision, usage: Usage, snapshot: Snapshot) -> CostRecord | None:
        """The cost of the response to ``decision`` (None: no backend served it)."""
        if decision.backend is None:
            return None
        table = self.table(decision.config_version, snapshot)
        served = table.backends.get(decision.backend)
        if served is None:  # removed by a reload whose predecessor is no longer kept
            return None
        cost = rated_cost(served.rates, usage)
        if table.reference is not None:
            reference = table.reference
            reference_cost = rated_cost(reference.rates, usage)
        else:
            reference, reference_cost = counterfactual(
                served, cost, table.candidates(decision), usage
            )
        team = decision.caller.team if decision.caller is not None else None
        return CostRecord(
            decision.id,
            served.name,
            served.tier,
            team,
            self.team_label(team, table),
            cost,
            reference_cost,
            reference.name,
            usage.estimated,
        )
