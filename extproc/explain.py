"""``routeiq explain``: the full decision for one request body, nothing forwarded.

Same view as the admin port's ``POST /v1/explain``; without a state store, so no
budget is charged and no session pinned. :func:`why` adds the decision in words: what
was asked, what tier it needed, which backend serves it and, when that backend's tier
is not the needed one, why (no usable backend on that tier, or what excluded them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint, parse_request
from extproc.api.paths import match_endpoint
from extproc.config.snapshot import Snapshot
from extproc.decide import decide
from extproc.decision import Decision, Outcome
from extproc.server.admin_views import decision_view
from extproc.vocabulary import Tier


async def explain_request(
    snapshot: Snapshot,
    body: bytes,
    headers: Mapping[str, str],
    path: str = "/v1/chat/completions",
) -> dict[str, Any]:
    """Parse and decide one request exactly as the server would, without state."""
    lowered = {k.lower(): v for k, v in headers.items()}
    endpoint = match_endpoint(path, snapshot.spec.path_prefix) or Endpoint.CHAT_COMPLETIONS
    try:
        parsed = parse_request(endpoint, "POST", path, lowered, body)
    except ApiError as error:
        return {
            "outcome": "denied",
            "error": {"status": error.status, "code": error.code, "message": error.message},
            "why": f"refused before deciding: {error.status} {error.code}: {error.message}",
        }
    decision = await decide(parsed, snapshot)
    return {"why": why(decision, snapshot), **decision_view(decision)}


def _asked(d: Decision) -> str:
    c = d.classification
    if d.profile is None:
        return f"model '{d.requested_model}' asked by name"
    if c is not None and c.quality is not None:  # the learned rule set the tier, not the category
        moved = "".join(f"; signal rule {rule}" for rule in c.rules)
        return (
            f"profile {d.profile}: category {c.category}; cost-quality {c.quality.reason}"
            f"{moved}; needs tier {d.needed_tier}"
        )
    if c is not None:
        return f"profile {d.profile}: category {c.category} needs tier {d.needed_tier}"
    return f"profile {d.profile} asks for tier {d.needed_tier}"


def _policy_notes(d: Decision) -> list[str]:
    notes = []
    if d.findings:
        found = ", ".join(f"{k}={v}" for k, v in sorted(d.findings.items()))
        notes.append(f"detectors found {found}")
    p = d.policy
    if p is not None and (p.rule_ids or not p.allowed):
        rules = ", ".join(p.rule_ids) or "no rule id"
        notes.append(f"policy ({rules}): {p.reason or p.message or 'no reason given'}")
    return notes


def _tier_gap(d: Decision, snapshot: Snapshot) -> str | None:
    """Why the serving backend's tier differs from the needed one (None: it does not)."""
    if d.tier is None or d.needed_tier is None or d.tier == d.needed_tier:
        return None
    on_tier = [b.name for b in snapshot.spec.backends if b.tier.value == d.needed_tier]
    if not on_tier:
        reason = f"no backend of this config has tier {d.needed_tier}"
    else:
        dropped = "; ".join(f"{n}: {d.excluded.get(n, 'ranked lower')}" for n in on_tier)
        reason = f"the {d.needed_tier} backends could not serve it ({dropped})"
    above = Tier(d.tier).rank > Tier(d.needed_tier).rank
    where = "the closest tier above" if above else "the closest below: none at or above"
    return f"{reason}, so {d.backend} ({where}, tier {d.tier}) serves it"


def why(d: Decision, snapshot: Snapshot) -> str:
    """The decision in one or two sentences of plain words."""
    if d.outcome is Outcome.CACHED:
        return "; ".join(d.reasons)
    if d.outcome is Outcome.DENIED:
        assert d.error is not None
        parts = [f"refused {d.error.status} {d.error.code or d.error.type}: {d.error.message}"]
        return "; ".join(parts + _policy_notes(d))
    if d.outcome is Outcome.FAILED_OPEN:
        return f"deciding failed ({', '.join(d.reasons)}); failure mode open: {d.backend}"
    parts = [_asked(d)]
    parts += _policy_notes(d)
    if d.excluded:
        parts.append("excluded " + ", ".join(f"{n} ({r})" for n, r in d.excluded.items()))
    gap = _tier_gap(d, snapshot) if d.profile is not None else None
    served = f"{d.backend} (tier {d.tier}, model {d.upstream_model})"
    parts.append(gap or f"-> {served}")
    if gap is not None:
        parts.append(f"model {d.upstream_model}")
    return "; ".join(parts)
