"""``routeiq replay``: re-decide logged traffic under another config and compare.

Input: decision logs (``extproc.decision_log``: one JSON object per line, ``"type":
"decision"`` or ``"usage"``). A decision line carries the prompt only when the server ran
with ``ROUTEIQ_LOG_PROMPTS=true`` (``Settings.log_prompts``): otherwise its ``prompt`` is
``"[redacted]"`` (or null when parsing never finished) and the line is counted and
skipped. The log keeps the *last user message* (cut to the logged length), the requested
model, the endpoint, ``stream``, the caller's team and user, and the token estimate; the
replayed request is rebuilt from those (one user message; system prompt, earlier turns
and tools are not in the log, so signals that depend on them are lost).

Each request goes through the real decision path, ``extproc.decide.decide`` with
``state=None``: policy, classification, selection, nothing charged, no affinity, no
health; ``--premium-share`` moves the new router's ``auto`` knob first.

Expected cost of one request on a backend, with the **new config's** prices for both the
logged and the replayed backend (so the difference is the routing, not a price change):
``prompt_tokens * inputPerMTok / 1e6 + output_tokens * outputPerMTok / 1e6``, where
``prompt_tokens`` is the usage line's ``input_tokens`` when logged, else the decision's
``prompt_tokens_estimate``; ``output_tokens`` is the usage line's ``output_tokens`` (the
completion tokens) when logged, else the request's ``max_tokens`` when logged, else
``default_output_tokens`` (:data:`DEFAULT_OUTPUT_TOKENS`). A logged backend the new
config does not have is unpriced and counted.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.backend import Backend
from extproc.config.snapshot import Snapshot
from extproc.decide import decide
from extproc.decision import Decision, Outcome
from extproc.decision_log import REDACTED
from extproc.routing.progress import Progress
from extproc.routing.scoring import ToolError

DEFAULT_OUTPUT_TOKENS = 256
DENIED = "(denied)"


@dataclass(frozen=True, slots=True)
class Logged:
    """One logged decision that can be replayed."""

    id: str
    prompt: str
    requested_model: str
    endpoint: str
    stream: bool
    team: str | None
    user: str | None
    backend: str | None  # None: denied
    tier: str | None
    prompt_tokens: int | None
    max_tokens: int | None


@dataclass(slots=True)
class LogContents:
    """Replayable decisions, token usage by decision id, and what was skipped."""

    decisions: list[Logged] = field(default_factory=list)
    usage: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    lines: int = 0
    usage_lines: int = 0
    without_prompt: int = 0
    other: int = 0


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _add_line(out: LogContents, doc: dict[str, Any]) -> None:
    kind = doc.get("type")
    if kind == "usage" and isinstance(doc.get("id"), str):
        out.usage_lines += 1
        out.usage[doc["id"]] = (_int(doc.get("input_tokens")), _int(doc.get("output_tokens")))
        return
    if kind != "decision":
        out.other += 1
        return
    prompt = doc.get("prompt")
    if not isinstance(prompt, str) or prompt == REDACTED or not prompt:
        out.without_prompt += 1
        return
    caller = doc.get("caller") if isinstance(doc.get("caller"), dict) else {}
    routed = doc.get("outcome") != Outcome.DENIED.value and doc.get("backend")
    out.decisions.append(
        Logged(
            id=str(doc.get("id")),
            prompt=prompt,
            requested_model=str(doc.get("requested_model") or "auto"),
            endpoint=str(doc.get("endpoint") or Endpoint.CHAT_COMPLETIONS.value),
            stream=bool(doc.get("stream")),
            team=caller.get("team") if caller else None,
            user=caller.get("user") if caller else None,
            backend=str(doc["backend"]) if routed else None,
            tier=str(doc.get("tier")) if routed and doc.get("tier") else None,
            prompt_tokens=_int(doc.get("prompt_tokens_estimate")),
            max_tokens=_int(doc.get("max_tokens")),
        )
    )


def read_logs(paths: Sequence[Path]) -> LogContents:
    """Every line of every log; a line that is not a JSON object is a ToolError."""
    out = LogContents()
    for path in paths:
        try:
            with path.open("rb") as fh:
                for n, raw in enumerate(fh, 1):
                    if not raw.strip():
                        continue
                    out.lines += 1
                    try:
                        doc = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        raise ToolError(f"{path}:{n}: not a JSON line") from None
                    if not isinstance(doc, dict):
                        raise ToolError(f"{path}:{n}: a log line must be a JSON object")
                    _add_line(out, doc)
        except OSError as exc:
            raise ToolError(f"cannot read {path}: {exc.strerror}") from None
    return out


def replay_request(logged: Logged, snapshot: Snapshot) -> ParsedRequest:
    """The request rebuilt from a log line. The logged team and user are passed the way the
    new config reads them (its trusted headers, or the body's ``user`` with ``bodyUser:
    fallback``); a caller the log names from JWT claims cannot be replayed as such (no
    token is logged) and becomes whatever the new config makes of an unnamed caller."""
    body: dict[str, Any] = {"model": logged.requested_model, "stream": logged.stream}
    if logged.endpoint == Endpoint.RESPONSES.value:
        endpoint, body["input"] = Endpoint.RESPONSES, logged.prompt
    else:
        endpoint = Endpoint.CHAT_COMPLETIONS
        body["messages"] = [{"role": "user", "content": logged.prompt}]
    if logged.max_tokens is not None:
        body["max_tokens" if endpoint is Endpoint.CHAT_COMPLETIONS else "max_output_tokens"] = (
            logged.max_tokens
        )
    headers: dict[str, str] = {}
    identity = snapshot.spec.identity
    trusted = identity.trusted_headers
    if trusted is not None:  # the new config names callers by headers: set them
        for name, value in ((trusted.team, logged.team), (trusted.user, logged.user)):
            if name and value:
                headers[name] = value
    if logged.user and identity.body_user == "fallback" and not (trusted and trusted.user):
        body["user"] = logged.user
    return parse_request(endpoint, "POST", f"/v1/{endpoint.value}", headers, orjson.dumps(body))


@dataclass(frozen=True, slots=True)
class Replayed:
    """One request before (logged) and after (re-decided), with its expected costs."""

    before_backend: str
    after_backend: str
    before_tier: str
    after_tier: str
    before_cost: float | None
    after_cost: float | None


def _cost(backends: Mapping[str, Backend], name: str | None, tokens: tuple[int, int]) -> float:
    if name is None:
        return 0.0  # a refused request costs nothing
    return backends[name].cost.estimate(*tokens)


async def _replay_all(
    snapshot: Snapshot, contents: LogContents, default_output: int
) -> list[Replayed]:
    out: list[Replayed] = []
    with Progress("replay", len(contents.decisions)) as progress:
        for logged in contents.decisions:
            try:
                request = replay_request(logged, snapshot)
            except ApiError as exc:
                raise ToolError(
                    f"decision {logged.id}: cannot rebuild the request ({exc.message})"
                ) from None
            decision = await decide(request, snapshot, state=None)
            out.append(_compare(logged, decision, request, contents, snapshot, default_output))
            progress.advance()
    return out


def _compare(
    logged: Logged,
    decision: Decision,
    request: ParsedRequest,
    contents: LogContents,
    snapshot: Snapshot,
    default_output: int,
) -> Replayed:
    used_in, used_out = contents.usage.get(logged.id, (None, None))
    prompt_tokens = used_in or logged.prompt_tokens or request.prompt_tokens
    output = used_out if used_out is not None else logged.max_tokens or default_output
    tokens = (prompt_tokens, output)
    after = decision.backend if decision.outcome is not Outcome.DENIED else None
    backends = snapshot.backends
    before_known = logged.backend is None or logged.backend in backends
    return Replayed(
        before_backend=logged.backend or DENIED,
        after_backend=after or DENIED,
        before_tier=logged.tier or DENIED,
        after_tier=(decision.tier or DENIED) if after else DENIED,
        before_cost=_cost(backends, logged.backend, tokens) if before_known else None,
        after_cost=_cost(backends, after, tokens),
    )


def replay(
    snapshot: Snapshot, contents: LogContents, default_output: int = DEFAULT_OUTPUT_TOKENS
) -> list[Replayed]:
    """Re-decide every replayable logged decision under ``snapshot`` (nothing charged);
    a ToolError when no logged decision carries a prompt."""
    if not contents.decisions:
        raise ToolError(
            f"no logged decision carries a prompt ({contents.without_prompt} without one): "
            "the server logs prompts only with ROUTEIQ_LOG_PROMPTS=true"
        )
    return asyncio.run(_replay_all(snapshot, contents, default_output))


def with_router(snapshot: Snapshot, router: Any) -> Snapshot:
    """``snapshot`` with another router (a moved knob or another strategy)."""
    return replace(snapshot, router=router)


def _mix(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def summary(rows: Sequence[Replayed], contents: LogContents) -> dict[str, Any]:
    """Tier and backend mix before/after, moves, expected cost (the ``--json`` output)."""
    priced = [r for r in rows if r.before_cost is not None and r.after_cost is not None]
    before = sum(r.before_cost or 0.0 for r in priced)
    after = sum(r.after_cost or 0.0 for r in priced)
    moves = Counter(
        f"{r.before_backend} -> {r.after_backend}"
        for r in rows
        if r.before_backend != r.after_backend
    )
    return {
        "log_lines": contents.lines,
        "replayed": len(rows),
        "usage_lines": contents.usage_lines,
        "skipped_without_prompt": contents.without_prompt,
        "other_lines": contents.other,
        "tiers": {
            "before": _mix(r.before_tier for r in rows),
            "after": _mix(r.after_tier for r in rows),
        },
        "backends": {
            "before": _mix(r.before_backend for r in rows),
            "after": _mix(r.after_backend for r in rows),
        },
        "moved": dict(moves.most_common()),
        "unchanged": sum(r.before_backend == r.after_backend for r in rows),
        "expected_cost": {
            "before": before,
            "after": after,
            "priced": len(priced),
            "unpriced": len(rows) - len(priced),
        },
    }


def _table(title: str, mix: Mapping[str, Mapping[str, int]], total: int) -> list[str]:
    names = sorted(set(mix["before"]) | set(mix["after"]))
    width = max([len(title), *map(len, names)])
    lines = [f"{title:<{width}}  {'before':>14}  {'after':>14}"]
    for name in names:
        cells = [mix[side].get(name, 0) for side in ("before", "after")]
        lines.append(
            f"{name:<{width}}  " + "  ".join(f"{c:>6} ({100 * c / total:5.1f}%)" for c in cells)
        )
    return lines


def format_summary(doc: Mapping[str, Any]) -> str:
    """The human-readable replay report."""
    n = doc["replayed"]
    lines = [
        f"replayed {n} decisions ({doc['log_lines']} log lines: {doc['usage_lines']} usage, "
        f"{doc['skipped_without_prompt']} decisions without a prompt skipped, "
        f"{doc['other_lines']} other)"
    ]
    lines += _table("tier", doc["tiers"], n) + _table("backend", doc["backends"], n)
    lines.append(f"moved: {n - doc['unchanged']} of {n}")
    lines += [f"  {move}: {count}" for move, count in doc["moved"].items()]
    cost = doc["expected_cost"]
    change = (
        f" ({100 * (cost['after'] - cost['before']) / cost['before']:+.1f}%)"
        if cost["before"]
        else ""
    )
    lines.append(
        f"expected cost: before ${cost['before']:.6f}, after ${cost['after']:.6f}"
        f"{change} over {cost['priced']} priced requests"
    )
    if cost["unpriced"]:
        lines.append(
            f"note: {cost['unpriced']} requests were logged on backends the new "
            "config does not have: left out of the cost"
        )
    return "\n".join(lines)


def dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2)
