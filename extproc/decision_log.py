"""Decision log: one JSON line per decision (and per response's usage), off the event loop.

The request path only appends a tuple of references (the frozen ``Decision``, the
frozen ``ParsedRequest``, two floats) to a ``collections.deque``: no lock, no system
call and no thread woken per request (a ``queue.Queue`` put wakes the writer each time,
which then contends for the GIL with the event loop). A daemon thread drains the deque
every ``interval_s`` (100 ms), builds the JSON documents from the decision's typed
parts, encodes them with orjson and writes the batch. When ``queue_max`` lines wait
(the disk or stdout reader cannot keep up) new lines are dropped and counted
(``dropped``), because a slow log must never slow requests down.

What is written, and never: the caller is the team, user and the *hash* of the API
key that ``decide`` already computed; no header value is logged except
``x-request-id``. The prompt is left out unless the operator sets ``log_prompts``;
then the last user message is logged, cut to ``prompt_chars`` characters, with
recognisable credentials (API keys, bearer tokens, private key blocks) masked.

The last ``RECENT`` items are also kept in memory, numbered (``recent``), for the
admin dashboard's live stream; it renders them with ``document``, so the dashboard
shows exactly the redacted lines, also with the sink off. Usage lines carry the
response's cost when ``extproc.cost`` priced it (``cost_usd``, ``counterfactual_usd``,
``reference_backend``, with ``backend``, ``tier`` and ``team``).

Sinks: ``stdout`` (one line per write, for a log collector), a file with size-based
rotation (``path``, ``path.1``... ``path.N``; with 0 backups the file is truncated
when full), or ``off`` (nothing is queued at all).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

import orjson

from extproc.api.usage import Usage, usage_from_object
from extproc.decision import Decision

if TYPE_CHECKING:
    from extproc.api.openai import ParsedRequest
    from extproc.config.settings import Settings
    from extproc.cost.accountant import CostRecord
    from extproc.policy.result import PolicyResult
    from extproc.routing.router import Classification

REQUEST_ID_HEADER = "x-request-id"
REDACTED = "[redacted]"
_MASK = re.compile(
    r"(?:sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )?PRIVATE KEY-----|$))"
)
_DECISION, _USAGE, _FLUSH, _STOP = 0, 1, 2, 3
RECENT = 256  # items kept for the admin dashboard's live stream (``recent``)
INTERVAL_S = 0.1


class Sink(Protocol):
    def write(self, lines: list[bytes]) -> None: ...
    def close(self) -> None: ...


class StreamSink:
    """Lines to a binary stream (stdout), flushed after every batch."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, lines: list[bytes]) -> None:
        self._stream.write(b"".join(lines))
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class RotatingFileSink:
    """Append lines to ``path``; past ``max_bytes`` shift ``path.N-1`` -> ``path.N``.

    Rotation happens between lines, never inside one; a single line longer than
    ``max_bytes`` is still written whole, into a fresh file.
    """

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self._path = path
        self._max = max_bytes
        self._backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - lives as long as the sink
        self._size = self._file.tell()

    def _rotate(self) -> None:
        self._file.close()
        if self._backups > 0:
            for i in range(self._backups - 1, 0, -1):
                src = self._path.with_name(f"{self._path.name}.{i}")
                if src.exists():
                    src.replace(self._path.with_name(f"{self._path.name}.{i + 1}"))
            self._path.replace(self._path.with_name(f"{self._path.name}.1"))
            self._file = open(self._path, "ab")  # noqa: SIM115
        else:
            self._file = open(self._path, "wb")  # noqa: SIM115
        self._size = 0

    def write(self, lines: list[bytes]) -> None:
        for line in lines:
            if self._size and self._size + len(line) > self._max:
                self._rotate()
            self._file.write(line)
            self._size += len(line)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def mask_secrets(text: str) -> str:
    """``text`` with recognisable credentials replaced by ``[redacted]``."""
    return _MASK.sub(REDACTED, text)


class DecisionLog:
    """The decision log of one process. ``from_settings`` once; ``close`` at shutdown."""

    def __init__(
        self,
        sink: Sink | None,
        *,
        log_prompts: bool = False,
        prompt_chars: int = 1000,
        queue_max: int = 10_000,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._sink = sink
        self._log_prompts = log_prompts
        self._prompt_chars = prompt_chars
        self._queue_max = queue_max
        self._interval_s = interval_s
        self._queue: deque[tuple[Any, ...]] = deque()
        self._wake = threading.Event()  # set by flush/close: drain now, not at the tick
        self._dropped = 0
        self.write_errors = 0
        # The last RECENT items, whatever the sink (also off), numbered for ``recent``.
        self._recent: deque[tuple[int, tuple[Any, ...]]] = deque(maxlen=RECENT)
        self._seq = 0
        self._thread: threading.Thread | None = None
        if sink is not None:
            self._thread = threading.Thread(
                target=self._run, name="routeiq-decision-log", daemon=True
            )
            self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, *, stdout: IO[bytes] | None = None) -> DecisionLog:
        """Per ``decision_log`` (off/stdout/file), ``decision_log_path``,
        ``decision_log_max_bytes``, ``decision_log_backups`` and ``log_prompts``."""
        sink: Sink | None = None
        if settings.decision_log == "stdout":
            sink = StreamSink(stdout if stdout is not None else sys.stdout.buffer)
        elif settings.decision_log == "file":
            sink = RotatingFileSink(
                settings.decision_log_path,
                settings.decision_log_max_bytes,
                settings.decision_log_backups,
            )
        return cls(sink, log_prompts=settings.log_prompts)

    @property
    def enabled(self) -> bool:
        return self._sink is not None

    def dropped(self) -> int:
        """Lines dropped so far because the queue was full (see ``Telemetry.watch_dropped``)."""
        return self._dropped

    # -- hot path: enqueue references, nothing else -----------------------------------

    def _put(self, item: tuple[Any, ...]) -> None:
        if len(self._queue) >= self._queue_max:
            self._dropped += 1
            return
        self._queue.append(item)

    def _keep(self, item: tuple[Any, ...]) -> None:
        self._seq += 1
        self._recent.append((self._seq, item))
        if self._sink is not None:
            self._put(item)

    def log_decision(
        self, decision: Decision, request: ParsedRequest | None, elapsed_s: float
    ) -> None:
        """One line for ``decision`` (``request`` is None when parsing never finished)."""
        self._keep((_DECISION, time.time(), decision, request, elapsed_s))

    def log_usage(
        self,
        decision_id: str,
        usage: Usage | Mapping[str, Any],
        cost: CostRecord | None = None,
    ) -> None:
        """One line with the token usage of the response to ``decision_id`` (and its
        ``cost``, priced by ``extproc.cost``, when known)."""
        self._keep((_USAGE, time.time(), decision_id, usage, cost))

    def recent(self, after: int = 0) -> list[tuple[int, tuple[Any, ...]]]:
        """Items logged after number ``after`` among the last ``RECENT`` (oldest first),
        each ``(number, item)``; ``document(item)`` is its line. For the admin dashboard:
        the same documents, redaction included, whether or not a sink is configured."""
        return [entry for entry in list(self._recent) if entry[0] > after]

    def document(self, item: tuple[Any, ...]) -> dict[str, Any]:
        """The JSON object of a decision or usage item (as written to the sink)."""
        return self._document(item)

    # -- control ------------------------------------------------------------------------

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every line queued before this call is written; False on timeout."""
        if self._sink is None:
            return True
        done = threading.Event()
        self._queue.append((_FLUSH, done))
        self._wake.set()
        return done.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, stop the thread, close the sink."""
        if self._thread is None:
            return
        self._queue.append((_STOP,))
        self._wake.set()
        self._thread.join(timeout_s)
        self._thread = None

    # -- writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        q, wake = self._queue, self._wake
        while True:
            wake.wait(self._interval_s)
            wake.clear()  # before draining: an item put after this wakes the next round
            batch = [q.popleft() for _ in range(len(q))]
            if batch and self._write(batch):
                return

    def _write(self, batch: list[tuple[Any, ...]]) -> bool:
        """Encode and write one batch; release flush waiters; True when told to stop."""
        assert self._sink is not None
        lines: list[bytes] = []
        events: list[threading.Event] = []
        stop = False
        for item in batch:
            kind = item[0]
            if kind == _FLUSH:
                events.append(item[1])
            elif kind == _STOP:
                stop = True
            else:
                try:
                    lines.append(orjson.dumps(self._document(item), default=str) + b"\n")
                except (TypeError, ValueError):
                    self.write_errors += 1
        if lines:
            try:
                self._sink.write(lines)
            except OSError:
                self.write_errors += 1
        for event in events:
            event.set()
        if stop:
            with contextlib.suppress(OSError):
                self._sink.close()
        return stop

    def _document(self, item: tuple[Any, ...]) -> dict[str, Any]:
        if item[0] == _USAGE:
            _, ts, decision_id, usage, cost = item
            u = usage if isinstance(usage, Usage) else usage_from_object(dict(usage))
            return {
                "type": "usage",
                "time": _iso(ts),
                "id": decision_id,
                "input_tokens": u.prompt_tokens if u else None,
                "output_tokens": u.completion_tokens if u else None,
                "cached_tokens": u.cached_tokens if u else None,
                "reasoning_tokens": u.reasoning_tokens if u else None,
                "estimated": u.estimated if u else None,
                **_cost_fields(cost),
            }
        _, ts, decision, request, elapsed_s = item
        return self.decision_document(decision, request, elapsed_s, ts)

    def decision_document(
        self,
        decision: Decision,
        request: ParsedRequest | None,
        elapsed_s: float,
        ts: float,
    ) -> dict[str, Any]:
        """The JSON object of one decision line (public for tests and ``/v1/explain``).

        Built from the decision's typed parts (caller, classification, policy), never
        from its full explain document, which carries more than a log line needs.
        """
        c = decision.classification
        error = decision.error
        prompt: str | None = None
        if request is not None:
            if self._log_prompts:
                prompt = mask_secrets(request.last_user_text[: self._prompt_chars])
            else:
                prompt = REDACTED
        return {
            "type": "decision",
            "time": _iso(ts),
            "id": decision.id,
            "request_id": request.headers.get(REQUEST_ID_HEADER) if request else None,
            "caller": decision.caller.as_dict() if decision.caller is not None else None,
            "endpoint": request.endpoint.value if request else None,
            "stream": request.stream if request else None,
            "requested_model": decision.requested_model,
            "model": decision.upstream_model,
            "backend": decision.backend,
            "profile": decision.profile,
            "category": decision.category,
            "tier": decision.tier,
            "score": round(c.score, 4) if c is not None else None,
            "strategy": decision.strategy,
            "variant": decision.variant,
            "quality": _quality(c),
            "shadow": _shadow(c),
            "outcome": decision.outcome.value,
            "status": error.status if error else None,
            "error_code": (error.code or error.type) if error else None,
            "reasons": list(decision.reasons),
            "rule_ids": list(decision.rule_ids),
            "budget_refused_by": list(decision.budget_refused_by),
            "policy": _policy_summary(decision.policy),
            "excluded": (
                dict(decision.excluded) if decision.excluded or decision.backend else None
            ),
            "fallbacks": list(decision.fallbacks),
            "cache": decision.cache.explain() if decision.cache is not None else None,
            "config_version": decision.config_version,
            "latency_ms": round(elapsed_s * 1000, 3),
            "prompt_tokens_estimate": request.prompt_tokens if request else None,
            "max_tokens": request.max_tokens if request else None,
            "prompt": prompt,
        }


def _cost_fields(cost: CostRecord | None) -> dict[str, Any]:
    """The usage line's cost keys (always present; null when the response was not priced)."""
    if cost is None:
        return dict.fromkeys(_COST_KEYS)
    return {
        "backend": cost.backend,
        "tier": cost.tier,
        "team": cost.team,
        "cost_usd": round(cost.cost_usd, 9),
        "counterfactual_usd": round(cost.counterfactual_usd, 9),
        "reference_backend": cost.reference_backend,
    }


_COST_KEYS = ("backend", "tier", "team", "cost_usd", "counterfactual_usd", "reference_backend")


def _quality(c: Classification | None) -> dict[str, Any] | None:
    """The cost-quality verdict: the need, the bars it was held to and where they came
    from, and the tier the rule chose (before floors, ceilings and signal rules)."""
    q = None if c is None else c.quality
    if q is None:
        return None
    return {"need": round(q.need, 4), "premium_bar": round(q.bars["premium"], 4),
            "eco_bar": round(q.bars["eco"], 4), "tier": q.tier,
            "calibration": q.calibration}  # fmt: skip


def _shadow(c: Classification | None) -> dict[str, Any] | None:
    if c is None or c.shadow is None:
        return None
    s = c.shadow
    return {"strategy": s.strategy, "category": s.category, "tier": s.tier,
            "disagrees": c.shadow_disagrees}  # fmt: skip


def _policy_summary(policy: PolicyResult | None) -> dict[str, Any] | None:
    """The policy fields worth a log line; never the raw decision document or input."""
    if policy is None:
        return None
    out: dict[str, Any] = {
        "engine": policy.engine,
        "allowed": policy.allowed,
        "reason": policy.reason,
        "rule_ids": list(policy.rule_ids),
        "latency_us": round(policy.latency_s * 1e6, 1),
    }
    if policy.dry_run is not None:
        d = policy.dry_run
        out["dry_run"] = {"would_deny": d.would_deny, "http_status": d.http_status,
                          "message": d.message, "rule_ids": list(d.rule_ids)}  # fmt: skip
    if policy.engine_unavailable:
        out["engine_unavailable"] = True
    return out
