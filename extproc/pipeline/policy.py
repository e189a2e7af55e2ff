"""Policy stage: the Rego decision over the request, its caller and its analysis.

A deny refuses with the policy's error; a policy may also force a model or profile,
which is resolved here (an unknown name is the policy's own error: a 500 naming the
rule, never a crash). ``StateUnavailable`` while reading budget levels for the input
refuses like a budget check that could not be made.
"""

from __future__ import annotations

from extproc.api.identity import Caller
from extproc.api.openai import ParsedRequest
from extproc.config.snapshot import Snapshot
from extproc.pipeline.analyze import Analysis
from extproc.pipeline.ask import Ask, lookup
from extproc.pipeline.refusal import Refusal
from extproc.policy import PolicyResult, build_input
from extproc.policy.result import policy_config_error
from extproc.state.ratelimit import limits_document
from extproc.state.types import StateStore, StateUnavailable


def _classification_input(analysis: Analysis) -> dict[str, object] | None:
    c = analysis.classification
    if c is None:
        return None
    return {"category": c.category, "tier": c.tier, "score": c.score, "scores": dict(c.scores)}


async def evaluate(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller,
    ask: Ask,
    analysis: Analysis,
    state: StateStore | None,
) -> PolicyResult:
    """Build the input document and evaluate it (``StateUnavailable`` may escape)."""
    assert snapshot.policy is not None
    spec = snapshot.spec.policy
    limits = None
    if spec.include_limits and state is not None:
        buckets = snapshot.state_rules.buckets_for(caller, request.model, None)
        if buckets:
            limits = limits_document(await state.limit_status(buckets))
    doc = build_input(
        request,
        caller,
        host=request.headers.get(":authority", ""),
        profile=ask.profile.value if ask.profile else None,
        classification=_classification_input(analysis),
        limits=limits,
        findings=dict(analysis.findings),
        include_raw_body=spec.include_raw_body,
        redact=spec.redact_headers,
    )
    return await snapshot.policy.evaluate(doc)


async def evaluate_or_refuse(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller,
    ask: Ask,
    analysis: Analysis,
    state: StateStore | None,
) -> PolicyResult:
    """:func:`evaluate`; budget levels that cannot be read refuse like a budget check."""
    try:
        return await evaluate(snapshot, request, caller, ask, analysis, state)
    except StateUnavailable as exc:
        raise Refusal(exc) from None


def enforce(snapshot: Snapshot, result: PolicyResult, ask: Ask) -> Ask:
    """Refuse on deny; the ask after a forced model or profile (``ask`` itself if none)."""
    if not result.allowed:
        raise Refusal(result.api_error(), result.rule_ids)
    name = result.force_model or (result.profile if ask.profile is not None else None)
    if not name:
        return ask
    forced = lookup(snapshot, name, {})
    if forced is None:
        what = f"it routes to '{name[:64]}', which is no model or profile this config serves"
        raise Refusal(policy_config_error(", ".join(result.rule_ids), what), result.rule_ids)
    return forced
