"""From an engine's raw answer to a ``PolicyResult``: one place for what every engine shares.

An engine's only job is to evaluate the query: return the raw decision value, raise
``UndefinedDecision`` when the query has no value, or report a failure with a detail for
logs. The :class:`Judge` turns each of these into the result the decision uses, with
the same rules for every engine: the decision document is parsed (``parse_decision``,
dry-run applied), an undefined decision is a deny (default-deny), a malformed decision
or a failure is "unavailable" under the operator's ``failureMode``, and the engine time
is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from extproc.policy.result import DecisionError, PolicyResult, parse_decision, unavailable

_MEMO_ENTRIES = 256  # distinct decision texts kept per engine; cleared when full
_MEMO_TEXT_MAX = 4096  # longer decision texts (large custom bodies) are not kept


class UndefinedDecision(LookupError):
    """The policy query has no value for this input (no rule matched, no default)."""


class Judge:
    """The shared rules of one engine instance (its name, deny status, modes)."""

    def __init__(self, engine: str, *, deny_status: int, dry_run: bool, fail_open: bool) -> None:
        self.engine = engine
        self.deny_status = deny_status
        self.dry_run = dry_run
        self.fail_open = fail_open
        self._memo: dict[str, PolicyResult] = {}

    def answered(self, value: Any, started: float) -> PolicyResult:
        """The engine answered ``value`` (evaluation began at ``started``); the latency is
        the engine's, up to its answer (one result built, no copy to add the time)."""
        latency_s = time.perf_counter() - started
        try:
            return parse_decision(
                value,
                engine=self.engine,
                deny_status=self.deny_status,
                dry_run=self.dry_run,
                latency_s=latency_s,
            )
        except DecisionError as exc:
            return self.failed(f"bad decision: {exc}", started)

    def answered_text(
        self, text: str, decode: Callable[[str], Any], started: float
    ) -> PolicyResult:
        """The engine answered the JSON ``text``; ``decode`` turns it into the decision
        value (raising ``UndefinedDecision`` for none). Most requests get one of a few
        decisions ("allowed", nothing else), so the result for each text is kept (a
        bounded memo, per engine instance, hence per snapshot) and only its latency is
        new: the same document always parses to the same result under the same rules."""
        kept = self._memo.get(text)
        if kept is not None:
            return kept.with_latency(time.perf_counter() - started)
        result = self.answered(decode(text), started)
        if not result.engine_unavailable and len(text) <= _MEMO_TEXT_MAX:
            if len(self._memo) >= _MEMO_ENTRIES:
                self._memo.clear()
            self._memo[text] = result
        return result

    def undefined(self, started: float) -> PolicyResult:
        """No decision: denied, as a policy with no matching rule must be."""
        return PolicyResult(
            allowed=False,
            http_status=self.deny_status,
            message="The request was denied by policy.",
            reason="policy decision undefined",
            engine=self.engine,
            latency_s=time.perf_counter() - started,
        )

    def failed(self, detail: str, started: float) -> PolicyResult:
        """The engine could not answer: the failure mode decides (``detail`` for logs;
        never the input's text)."""
        result = unavailable(self.engine, fail_open=self.fail_open, detail=detail)
        return result.with_latency(time.perf_counter() - started)
