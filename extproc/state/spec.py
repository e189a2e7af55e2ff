"""The ``spec.state`` section of the RoutingConfig: limits, affinity, health.

This is the operator's declaration only. ``extproc.state.rules.compile_state_rules``
turns it into a ``StateRules`` object (per config snapshot) that maps a request to
its limit buckets, its session key and its health rule; the ``StateStore`` (per
process) holds the counters and survives config reloads.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from extproc.config.base import Spec

_STATUS_CLASS = re.compile(r"^[1-5]xx$")


class LimitMatch(Spec):
    """Restrict a limit to some requests. Empty lists match everything.

    ``models`` are compared with the model name the request is served as (after alias
    resolution, the public name); ``backends`` with the selected backend's ``name``.
    """

    models: tuple[str, ...] = ()
    backends: tuple[str, ...] = ()


class LimitSpec(Spec):
    """One rate limit / budget: requests and/or tokens per rolling window, per caller.

    ``key`` says which caller attribute gets its own bucket (``team``, ``user`` or
    ``api_key``, the hashed key). Team and user come only from verified claims or
    declared trusted headers (``spec.identity``); a caller without the attribute
    (anonymous) shares one bucket per limit (``whenMissing: shared``, the default, so
    that omitting, inventing or rotating a header never escapes a limit) or is not
    limited by it (``whenMissing: skip``, explicit only).
    """

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    key: Literal["team", "user", "api_key"]
    match: LimitMatch = LimitMatch()
    requests_per_window: int | None = Field(default=None, gt=0)
    tokens_per_window: int | None = Field(default=None, gt=0)
    window_seconds: float = Field(default=60.0, gt=0, le=31 * 86400)
    when_missing: Literal["shared", "skip"] = "shared"

    @model_validator(mode="after")
    def _has_a_limit(self) -> LimitSpec:
        if self.requests_per_window is None and self.tokens_per_window is None:
            raise ValueError(f"limit '{self.name}' needs requestsPerWindow and/or tokensPerWindow")
        return self


class AffinitySpec(Spec):
    """Keep a conversation on the backend chosen first (warm provider prompt caches).

    The session is the ``sessionHeader`` value when the client sends one, otherwise (with
    ``hashFallback``) a stable hash of the system prompt and the first user turn. The
    mapping lives ``ttlSeconds`` after the conversation's last request.
    """

    enabled: bool = False
    ttl_seconds: float = Field(default=1800.0, gt=0, le=7 * 86400)
    session_header: str = Field(default="x-session-id", pattern=r"^[a-z0-9-]+$")
    hash_fallback: bool = True


class HealthSpec(Spec):
    """Passive health: ``failureThreshold`` failures within ``windowSeconds`` cool a
    backend down for ``cooldownSeconds`` (the selector skips it). ``failureStatuses``
    lists upstream HTTP statuses that count: exact codes (``429``) or classes (``5xx``).
    Status 0 (no response: reset, timeout) always counts.

    Reading a status costs a proxy one more ext_proc message per request (9 % of
    RouteIQ's CPU per explicit request, docs/benchmarks.md). ``sampleEvery: N`` reads 1
    request in N while the process has seen no failure within ``windowSeconds``, and
    every request from the first failure on until a window passes without one: a
    backend that starts failing is noticed within about N of its requests, and its
    further failures are all counted.
    """

    enabled: bool = True
    failure_threshold: int = Field(default=5, ge=1, le=10_000)
    window_seconds: float = Field(default=30.0, gt=0, le=86400)
    cooldown_seconds: float = Field(default=30.0, gt=0, le=86400)
    failure_statuses: tuple[int | str, ...] = ("5xx", 429)
    sample_every: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Read the upstream status of 1 request in N while no failure has been "
        "seen within windowSeconds, of every request after one (1 = every request).",
    )

    @field_validator("failure_statuses")
    @classmethod
    def _valid_statuses(cls, value: tuple[int | str, ...]) -> tuple[int | str, ...]:
        out: list[int | str] = []
        for item in value:
            if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
                code = int(item)
                if not 100 <= code <= 599:
                    raise ValueError(f"'{item}' is not an HTTP status")
                out.append(code)
            elif _STATUS_CLASS.match(item.lower()):
                out.append(item.lower())
            else:
                raise ValueError(f"'{item}' is neither an HTTP status nor a class like '5xx'")
        return tuple(out)


class StateSpec(Spec):
    """Budgets, session affinity and backend health rules."""

    limits: tuple[LimitSpec, ...] = ()
    affinity: AffinitySpec = AffinitySpec()
    health: HealthSpec = HealthSpec()

    @model_validator(mode="after")
    def _unique_names(self) -> StateSpec:
        names = [limit.name for limit in self.limits]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"limit names must be unique; repeated: {dupes}")
        return self
