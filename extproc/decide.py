"""The decision as a pipeline of named stages: identify -> resolve -> analyze -> policy
-> cache -> route -> charge -> respond (a cache hit ends at cache: a ``CACHED`` decision).

No gRPC, HTTP or Kong here: adapters turn a ``Decision`` into proxy instructions.
Shared state (budgets, affinity, health) comes in as a ``StateStore`` (``None``: the
deployment keeps none); CPU-heavy analysis goes through ``offload`` (``None``: run
inline, for tools and tests). Each stage lives in ``extproc.pipeline`` and refuses by
raising ``Refusal``, which becomes a ``DENIED`` decision carrying the results of the
stages that did run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from extproc import headers as h
from extproc.api.errors import ApiError
from extproc.api.identity import Caller, identify
from extproc.api.openai import ParsedRequest
from extproc.config.snapshot import Snapshot
from extproc.decision import Decision, Outcome
from extproc.pipeline.analyze import NOTHING, Analysis, analyze
from extproc.pipeline.ask import Ask, resolve
from extproc.pipeline.cache import cached_decision, charge_hit, consult, result_headers
from extproc.pipeline.charge import BudgetRefusal, Charge, charge
from extproc.pipeline.offload import InlineOffload, Offload
from extproc.pipeline.policy import enforce, evaluate_or_refuse
from extproc.pipeline.refusal import Refusal
from extproc.pipeline.respond import instructions
from extproc.pipeline.route import Route, route
from extproc.policy import PolicyResult
from extproc.state.types import StateStore

if TYPE_CHECKING:
    from extproc.cache.service import AnswerCache
    from extproc.cache.types import CacheResult

_INLINE = InlineOffload()


def new_decision_id() -> str:
    return os.urandom(8).hex()


@dataclass(slots=True)
class _Progress:
    """The results of the stages that ran so far (what a refusal can still explain)."""

    caller: Caller | None = None
    ask: Ask | None = None
    analysis: Analysis = NOTHING
    policy: PolicyResult | None = None
    chosen: Route | None = None
    cache: CacheResult | None = None


async def decide(
    request: ParsedRequest,
    snapshot: Snapshot,
    *,
    state: StateStore | None = None,
    decision_id: str | None = None,
    offload: Offload | None = None,
    cache: AnswerCache | None = None,
) -> Decision:
    """Decide where ``request`` goes under ``snapshot``; never raises for bad input.

    Refusals come back as a ``DENIED`` decision carrying an OpenAI-style ``ApiError``
    (401 token, 404 unknown model, 403 policy, 429 budget, 4xx nothing fits the
    request, 503 state down and fail-closed). Exceptions escape only for bugs;
    adapters apply the failure mode.
    """
    started = time.perf_counter()
    did = decision_id or new_decision_id()
    p = _Progress()
    try:
        paid = await _stages(request, snapshot, state, offload or _INLINE, p, cache)
    except BudgetRefusal as refusal:
        return _denied(did, snapshot, request, refusal, p, started, refusal.charge)
    except Refusal as refusal:
        return _denied(did, snapshot, request, refusal, p, started)
    if p.cache is not None and p.cache.hit:
        assert p.ask is not None
        return cached_decision(
            did, snapshot, request, p.caller, p.ask, p.analysis, p.policy, p.cache, paid, started
        )
    return _routed(did, snapshot, request, p, paid, started)


async def _stages(
    request: ParsedRequest,
    snapshot: Snapshot,
    state: StateStore | None,
    offload: Offload,
    p: _Progress,
    cache: AnswerCache | None = None,
) -> Charge:
    spec = snapshot.spec
    try:
        p.caller = identify(
            request.headers, spec.identity, request.user, snapshot.jwt, snapshot.api_keys
        )
    except ApiError as error:  # a bearer token that does not verify
        raise Refusal(error) from None
    p.ask = resolve(snapshot, request.model, request.headers)
    p.analysis = await analyze(
        snapshot,
        request,
        profile=p.ask.profile,
        scan=snapshot.policy is not None,
        sticky_key=_sticky_key(snapshot, request),
        offload=offload,
    )
    if snapshot.policy is not None:
        p.policy = await evaluate_or_refuse(snapshot, request, p.caller, p.ask, p.analysis, state)
        asked, p.ask = p.ask, enforce(snapshot, p.policy, p.ask)
        if p.ask is not asked:
            await _classify_forced(snapshot, request, p, offload)
    p.cache = await consult(snapshot, request, p.caller, p.ask, p.policy, cache, offload)
    if p.cache is not None and p.cache.answer is not None:
        return await charge_hit(snapshot, request, p.caller, p.ask, p.cache.answer, state)
    p.chosen = await route(
        snapshot, request, p.caller, p.ask, p.analysis.classification, p.policy, state
    )
    return await charge(snapshot, request, p.caller, p.ask, p.chosen, state)


def _sticky_key(snapshot: Snapshot, request: ParsedRequest) -> str | None:
    """The experiment arm's sticky key: the configured ``stickyBy`` header's value, else
    None (the router then hashes the prompt), also when a policy forced the profile."""
    router = snapshot.router
    if router is None or router.sticky_by is None:
        return None
    return request.headers.get(router.sticky_by)


async def _classify_forced(
    snapshot: Snapshot, request: ParsedRequest, p: _Progress, offload: Offload
) -> None:
    """A policy forced a classifying profile on a request that was not classified."""
    assert p.ask is not None
    profile = p.ask.profile
    if profile is None or not profile.classifies or p.analysis.classification is not None:
        return
    classified = await analyze(
        snapshot,
        request,
        profile=profile,
        scan=False,
        sticky_key=_sticky_key(snapshot, request),
        offload=offload,
    )
    p.analysis = Analysis(
        classified.classification,
        p.analysis.findings,
        p.analysis.degraded + classified.degraded,
    )


def _denied(
    did: str,
    snapshot: Snapshot,
    request: ParsedRequest,
    refusal: Refusal,
    p: _Progress,
    started: float,
    paid: Charge | None = None,
) -> Decision:
    error = refusal.error
    c = p.analysis.classification
    return Decision(
        id=did,
        outcome=Outcome.DENIED,
        config_version=snapshot.version,
        requested_model=request.model,
        profile=p.ask.profile.value if p.ask is not None and p.ask.profile else None,
        error=error,
        category=c.category if c is not None else None,
        needed_tier=p.chosen.target.value if p.chosen is not None else None,
        reasons=(error.code or error.type,),
        rule_ids=refusal.rule_ids,
        response_headers=((h.DECISION_ID, did),),
        prompt_tokens=request.prompt_tokens,
        caller=p.caller,
        classification=c,
        policy=p.policy,
        findings=p.analysis.findings,
        budget_refused_by=paid.refused_by if paid is not None else (),
        degraded=p.analysis.degraded,
        decide_ms=(time.perf_counter() - started) * 1000,
    )


def _routed(
    did: str,
    snapshot: Snapshot,
    request: ParsedRequest,
    p: _Progress,
    paid: Charge,
    started: float,
) -> Decision:
    assert p.ask is not None and p.chosen is not None
    chosen, c = p.chosen, p.analysis.classification
    backend = chosen.backend
    out = instructions(snapshot.spec, request, did, p.ask, p.analysis, p.policy, chosen, paid)
    return Decision(
        id=did,
        outcome=Outcome.ROUTED,
        config_version=snapshot.version,
        requested_model=request.model,
        profile=p.ask.profile.value if p.ask.profile else None,
        backend=backend.name,
        cluster=backend.cluster,
        upstream_model=out.upstream_model,
        body_overrides=out.body_overrides,
        fallbacks=tuple(b.name for b in chosen.ranked[1:]),
        category=c.category if c else None,
        tier=backend.tier.value,
        needed_tier=chosen.target.value,
        strategy=c.strategy if c else None,
        variant=c.variant if c else None,
        reasons=_reasons(p),
        rule_ids=p.policy.rule_ids if p.policy is not None else (),
        upstream_headers=out.upstream_headers,
        response_headers=out.response_headers + result_headers(p.cache),
        accounting=out.accounting,
        strip_usage_chunk=out.strip_usage_chunk,
        prompt_tokens=request.prompt_tokens,
        reservation=paid.reservation,
        caller=p.caller,
        classification=c,
        policy=p.policy,
        findings=p.analysis.findings,
        excluded=chosen.excluded,
        expected_costs=chosen.expected_costs,
        affinity=chosen.backend.name if chosen.affinity_applied else None,
        degraded=p.analysis.degraded,
        decide_ms=(time.perf_counter() - started) * 1000,
        cache=p.cache,
    )


def _reasons(p: _Progress) -> tuple[str, ...]:
    assert p.ask is not None and p.chosen is not None
    out = ["explicit model" if p.ask.profile is None else f"profile {p.ask.profile.value}"]
    c = p.analysis.classification
    if c is not None:
        if c.quality is not None:
            out.append(f"category {c.category}; cost-quality {c.quality.reason}")
        else:
            out.append(f"category {c.category} needs tier {c.tier}")
        out += [f"signal rule {rule}" for rule in c.rules]
    out += list(p.analysis.degraded)
    if p.chosen.affinity_applied:
        out.append(f"session pinned to {p.chosen.backend.name}")
    if p.cache is not None:  # "cache miss", "cache bypass: tools" (decision log, explain)
        out.append(
            f"cache {p.cache.status.value}" + (f": {p.cache.reason}" if p.cache.reason else "")
        )
    return tuple(out)


def fail_open_decision(snapshot: Snapshot, requested_model: str, reason: str) -> Decision:
    """Where a request goes when deciding failed and the operator chose fail-open."""
    did = new_decision_id()
    backend = snapshot.default_backend
    return Decision(
        id=did,
        outcome=Outcome.FAILED_OPEN,
        config_version=snapshot.version,
        requested_model=requested_model,
        backend=backend.name,
        cluster=backend.cluster,
        tier=backend.tier.value,
        reasons=(reason,),
        upstream_headers=((h.BACKEND, backend.name), (h.DECISION_ID, did)),
        response_headers=((h.BACKEND, backend.name), (h.DECISION_ID, did)),
    )
