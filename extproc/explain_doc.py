"""The explanation of a decision as a JSON-ready document, built from its typed parts.

Shown by ``routeiq explain``, the admin port's ``/v1/explain`` and the decision log;
never built on the request path. Keys (stable, documented in docs/operations.md):
``requested_model``, ``caller``, ``classification``, ``policy``, ``findings``,
``route`` or ``profile``, ``target_tier``, ``excluded``, ``candidates``, ``affinity``,
``budget``,
``degraded``, ``decide_ms``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from extproc.decision import Decision
    from extproc.routing.router import Classification


def classification_doc(c: Classification) -> dict[str, Any]:
    """The classification's explanation (category, tier, score, top scores, arm...)."""
    doc: dict[str, Any] = {
        "category": c.category,
        "tier": c.tier,
        "score": round(c.score, 4),
        "scores": {k: round(v, 4) for k, v in c.scores.items()},
        "strategy": c.strategy,
        "variant": c.variant,
        "embed_ms": round(c.embed_ms, 3),
    }
    if c.rules:
        doc["rules"] = list(c.rules)
    q = c.quality
    if q is not None:
        doc["cost_quality"] = {
            "profile": q.profile,
            "need": round(q.need, 4),
            "bars": {k: round(v, 4) for k, v in q.bars.items()},
            "tier": q.tier,
            "reason": q.reason,
            "calibration": q.calibration,
        }
    if c.shadow is not None:
        doc["shadow"] = {
            "strategy": c.shadow.strategy,
            "category": c.shadow.category,
            "tier": c.shadow.tier,
            "disagrees": c.shadow_disagrees,
        }
    return doc


def explain_document(d: Decision) -> dict[str, Any]:
    """Every stage's contribution to ``d``, in pipeline order; absent stages are omitted."""
    doc: dict[str, Any] = {"requested_model": d.requested_model}
    if d.caller is not None:
        doc["caller"] = d.caller.as_dict()
    if d.classification is not None:
        doc["classification"] = classification_doc(d.classification)
    if d.findings:
        doc["findings"] = dict(d.findings)
    if d.policy is not None:
        doc["policy"] = d.policy.explain()
    if d.needed_tier is not None:
        if d.profile is None:
            doc["route"] = "explicit model"
        else:
            doc["profile"] = d.profile
        doc["target_tier"] = d.needed_tier
    if d.excluded or d.backend is not None:
        doc["excluded"] = dict(d.excluded)
    if d.expected_costs:
        # Ranked order; the first one serves. USD at the backends' prices for this
        # request's prompt estimate and max_tokens (or the ranker's default output).
        doc["candidates"] = [
            {"backend": name, "expected_cost_usd": round(cost, 8)}
            for name, cost in d.expected_costs.items()
        ]
    if d.affinity is not None:
        doc["affinity"] = f"session pinned to {d.affinity}"
    if d.budget_refused_by:
        doc["budget"] = {"refused_by": list(d.budget_refused_by)}
    if d.degraded:
        doc["degraded"] = list(d.degraded)
    if d.decide_ms:
        doc["decide_ms"] = round(d.decide_ms, 3)
    return doc
