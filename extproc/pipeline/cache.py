"""Cache stage: after policy, answer a repeated question from the answer cache.

Runs only for requests that passed identify, resolve, analyze and policy, so a cached
answer never bypasses a policy. In order: the bypass rules and the tenant
(``extproc.cache.rules``; the policy's ``cache`` decision included), the exact key,
then, for a short last user turn, the semantic match within the same tenant and
conversation frame. The embedding is the analyze stage's when it already embedded
the same text (the embedder's per-snapshot cache answers), else it runs on the
``Offload`` pool; a pool that is busy or late skips the semantic match only.

A hit is charged per ``spec.cache.charge`` (``free``: nothing; ``usage``: the cached
answer's recorded tokens, from the caller's buckets, with the usual 429) and becomes a
``CACHED`` decision carrying the reply (JSON, or an SSE replay for a stream). A miss
carries a ``CacheTicket`` so that the adapter stores the response when it qualifies.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import orjson

from extproc import headers as h
from extproc.api.identity import Caller
from extproc.api.openai import ParsedRequest
from extproc.cache import rules
from extproc.cache.keys import request_keys
from extproc.cache.sse import replay, wants_usage
from extproc.cache.types import (
    AGE_HEADER,
    CACHE_HEADER,
    KIND_HEADER,
    SIMILARITY_HEADER,
    CachedAnswer,
    CacheResult,
    CacheStatus,
    CacheTicket,
)
from extproc.config.snapshot import Snapshot
from extproc.decision import Decision, Outcome
from extproc.pipeline.analyze import Analysis
from extproc.pipeline.ask import Ask
from extproc.pipeline.charge import NO_CHARGE, BudgetRefusal, Charge
from extproc.pipeline.offload import Offload, OffloadBusy, OffloadTimeout
from extproc.pipeline.refusal import Refusal
from extproc.policy import PolicyResult
from extproc.routing.router import cut
from extproc.state.ratelimit import rate_limit_error, ratelimit_headers
from extproc.state.types import StateStore, StateUnavailable

if TYPE_CHECKING:
    from extproc.cache.service import AnswerCache
    from extproc.cache.spec import CacheSpec
    from extproc.cache.types import Vector


def _asked(request: ParsedRequest, ask: Ask) -> str:
    """The model or profile the request is served under (aliases resolved)."""
    if ask.profile is not None:
        return f"profile:{ask.profile.value}"
    names = sorted(set(ask.public_names.values()))
    return f"model:{names[0] if names else request.model}"


def _semantic_text(snapshot: Snapshot, request: ParsedRequest, spec: CacheSpec) -> str | None:
    """The last user turn when it can be matched by meaning (whole, inside the window)."""
    router = snapshot.router
    text = request.last_user_text
    if not spec.semantic.enabled or router is None or not text.strip():
        return None
    options = router.spec.embedding
    if len(text) > min(spec.semantic.max_chars, options.max_chars):
        return None
    return cut(text, options)  # the analyze stage's text when it embeds the last turn only


async def _embed(snapshot: Snapshot, text: str, offload: Offload) -> Vector | None:
    router = snapshot.router
    assert router is not None
    embedder = router.embedder
    if embedder.cached(text):
        return embedder.embed(text)
    try:
        return await offload.run(lambda: embedder.embed(text))
    except (OffloadBusy, OffloadTimeout):
        return None


def _embedder_id(snapshot: Snapshot) -> str | None:
    router = snapshot.router
    return None if router is None else f"{router.spec.embedder}:{router.embedder.model}"


async def consult(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller | None,
    ask: Ask,
    policy: PolicyResult | None,
    cache: AnswerCache | None,
    offload: Offload,
) -> CacheResult | None:
    """The cache's answer for an admitted request (None: no cache configured)."""
    spec = snapshot.spec.cache
    if cache is None or not spec.enabled:
        return None
    started = time.perf_counter()
    tenant = rules.tenant(caller, spec)
    reason = rules.request_bypass(request, spec) or rules.policy_bypass(
        policy.cache if policy is not None else None, spec
    )
    if reason is None and tenant is None:
        reason = "anonymous"
    if reason is not None or tenant is None:
        cache.count_bypass(reason or "anonymous")
        return CacheResult(CacheStatus.BYPASS, reason or "anonymous")
    text = _semantic_text(snapshot, request, spec)
    keys = request_keys(
        request, _asked(request, ask), spec.namespace, _embedder_id(snapshot) if text else None
    )
    refresh = rules.cache_control(request.headers) == rules.NO_CACHE
    answer = None if refresh else await cache.exact(spec, tenant, keys.exact)
    vector: Vector | None = None
    best: float | None = None
    if answer is None and keys.frame is not None and text is not None:
        vector = await _embed(snapshot, text, offload)
        if vector is not None and not refresh:
            answer, best = await cache.semantic(spec, tenant, keys.frame, vector)
    elapsed = (time.perf_counter() - started) * 1000
    if answer is not None:
        cache.count_lookup("hit", answer, snapshot.backends.get(answer.entry.backend))
        return _hit(request, answer, best, elapsed)
    cache.count_lookup("miss", None, None)
    notes = [rules.NO_CACHE] if refresh else []
    if text is None and spec.semantic.enabled:
        notes.append("exact only")
    elif keys.frame is not None and vector is None:
        notes.append("embedding skipped")
    if not cache.store(spec).available:
        notes.append("store unavailable")
    frame = keys.frame if vector is not None else None
    ticket = CacheTicket(tenant, keys.exact, frame, vector, spec)
    return CacheResult(CacheStatus.MISS, "; ".join(notes), None, ticket, best, elapsed)


def _hit(
    request: ParsedRequest, answer: CachedAnswer, best: float | None, elapsed_ms: float
) -> CacheResult:
    body = answer.entry.body
    content_type = "application/json"
    if request.stream:
        body = replay(orjson.loads(body), wants_usage(request.body))
        content_type = "text/event-stream"
    return CacheResult(
        CacheStatus.HIT,
        "",
        answer,
        None,
        best,
        elapsed_ms,
        body=body,
        content_type=content_type,
    )


async def charge_hit(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller,
    ask: Ask,
    answer: CachedAnswer,
    state: StateStore | None,
) -> Charge:
    """``charge: usage``: the cached answer's tokens from the caller's buckets (429 when
    over); ``free`` (the default) charges nothing."""
    if snapshot.spec.cache.charge == "free" or state is None:
        return NO_CHARGE
    entry = answer.entry
    model = ask.public_names.get(entry.backend, request.model)
    buckets = snapshot.state_rules.buckets_for(caller, model, entry.backend)
    if not buckets:
        return NO_CHARGE
    tokens = entry.prompt_tokens + entry.completion_tokens
    try:
        charged = await state.consume(buckets, tokens)
    except StateUnavailable as exc:
        raise Refusal(exc) from None
    if not charged.allowed:
        refused = Charge(refused_by=tuple(charged.refused_by))
        raise BudgetRefusal(rate_limit_error(charged, tokens), refused)
    return Charge(charged.reservation, ratelimit_headers(charged.statuses))


def result_headers(result: CacheResult | None) -> tuple[tuple[str, str], ...]:
    """The client's ``x-routeiq-cache`` header for a routed request (miss or bypass)."""
    if result is None:
        return ()
    return ((CACHE_HEADER, result.status.value),)


def _hit_headers(
    snapshot: Snapshot, did: str, result: CacheResult, paid: Charge, policy: PolicyResult | None
) -> tuple[tuple[str, str], ...]:
    answer = result.answer
    assert answer is not None
    age = max(0, int(time.time() - answer.entry.created))
    out = [
        ("content-type", result.content_type),
        (CACHE_HEADER, CacheStatus.HIT.value),
        (KIND_HEADER, answer.kind.value),
        (SIMILARITY_HEADER, f"{answer.similarity:.4f}"),
        (AGE_HEADER, str(age)),
        *paid.headers,
    ]
    if snapshot.spec.response_headers.decision_id:
        out.append((h.DECISION_ID, did))
    if policy is not None:
        out += policy.response_headers
    return tuple(out)


def cached_decision(
    did: str,
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller | None,
    ask: Ask,
    analysis: Analysis,
    policy: PolicyResult | None,
    result: CacheResult,
    paid: Charge,
    started: float,
) -> Decision:
    """The ``CACHED`` decision: answered by RouteIQ with ``result.body``; no backend."""
    answer = result.answer
    assert answer is not None
    c = analysis.classification
    sim = "" if answer.kind.value == "exact" else f" {answer.similarity:.3f}"
    return Decision(
        id=did,
        outcome=Outcome.CACHED,
        config_version=snapshot.version,
        requested_model=request.model,
        profile=ask.profile.value if ask.profile else None,
        category=c.category if c else None,
        strategy=c.strategy if c else None,
        variant=c.variant if c else None,
        reasons=(f"cache hit ({answer.kind.value}{sim})", *analysis.degraded),
        rule_ids=policy.rule_ids if policy is not None else (),
        response_headers=_hit_headers(snapshot, did, result, paid, policy),
        prompt_tokens=request.prompt_tokens,
        reservation=paid.reservation,
        caller=caller,
        classification=c,
        policy=policy,
        findings=analysis.findings,
        degraded=analysis.degraded,
        decide_ms=(time.perf_counter() - started) * 1000,
        cache=result,
    )
