"""Charge stage: the caller's budgets, for the chosen backend; then the session pin.

All buckets are charged or none (the store's ``consume`` is atomic). A refusal is a
429 with ``Retry-After`` and OpenAI's ``x-ratelimit-*`` headers. The pin is written
after admission and its loss is harmless (it only costs cache warmth upstream).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from extproc.api.errors import ApiError
from extproc.api.identity import Caller
from extproc.api.openai import ParsedRequest
from extproc.config.snapshot import Snapshot
from extproc.pipeline.ask import Ask
from extproc.pipeline.refusal import Refusal
from extproc.pipeline.route import Route
from extproc.state.ratelimit import rate_limit_error, ratelimit_headers
from extproc.state.rules import estimated_tokens
from extproc.state.types import Reservation, StateStore, StateUnavailable


@dataclass(frozen=True, slots=True)
class Charge:
    """What was reserved (None: no budget applies) and the rate-limit headers to send."""

    reservation: Reservation | None = None
    headers: tuple[tuple[str, str], ...] = ()
    refused_by: tuple[str, ...] = ()


NO_CHARGE = Charge()


class BudgetRefusal(Refusal):
    """A 429 from the budgets; keeps which buckets refused, for the explanation."""

    def __init__(self, error: ApiError, charge: Charge) -> None:
        super().__init__(error)
        self.charge = charge


async def charge(
    snapshot: Snapshot,
    request: ParsedRequest,
    caller: Caller,
    ask: Ask,
    chosen: Route,
    state: StateStore | None,
) -> Charge:
    """Consume the estimated tokens from every bucket that applies, then pin the session."""
    rules = snapshot.state_rules
    backend = chosen.backend
    result = NO_CHARGE
    model_name = ask.public_names.get(backend.name, request.model)
    buckets = rules.buckets_for(caller, model_name, backend.name)
    if buckets and state is not None:
        tokens = estimated_tokens(request)
        try:
            charged = await state.consume(buckets, tokens)
        except StateUnavailable as exc:
            raise Refusal(exc) from None
        if not charged.allowed:
            refused = Charge(refused_by=tuple(charged.refused_by))
            raise BudgetRefusal(rate_limit_error(charged, tokens), refused)
        result = Charge(charged.reservation, ratelimit_headers(charged.statuses))
    if chosen.session is not None and state is not None and chosen.pinned != backend.name:
        # Admitted already: a lost pin only costs cache warmth upstream.
        with contextlib.suppress(StateUnavailable):
            await state.set_affinity(chosen.session, backend.name, rules.affinity_ttl_s)
    return result
