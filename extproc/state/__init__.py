"""Shared state: budgets and rate limits, session affinity, backend health.

Two lifetimes (see docs/state.md):

* per process: a ``StateStore`` from ``build_state_store(settings)`` (memory, or Redis
  behind the fail-open/closed wrapper). It holds counters and connections and
  survives config reloads.
* per snapshot: ``StateRules`` from ``compile_state_rules(spec.state)``: which buckets
  a request is charged to, its session key, the health rule.
"""

from typing import TYPE_CHECKING, Any

from extproc.state.memory import MemoryStateStore
from extproc.state.ratelimit import (
    format_reset,
    limits_document,
    rate_limit_error,
    ratelimit_headers,
)
from extproc.state.rules import StateRules, compile_state_rules, estimated_tokens
from extproc.state.spec import AffinitySpec, HealthSpec, LimitMatch, LimitSpec, StateSpec
from extproc.state.types import (
    Bucket,
    BucketStatus,
    ConsumeResult,
    HealthRule,
    Reservation,
    StateStats,
    StateStore,
    StateUnavailable,
    state_unavailable,
)

if TYPE_CHECKING:
    from extproc.state.build import build_state_store
    from extproc.state.redis_store import RedisStateStore
    from extproc.state.resilient import ResilientStateStore

# Imported on first use: the Redis client is loaded only by processes that build a store.
_LAZY = {
    "build_state_store": "extproc.state.build",
    "RedisStateStore": "extproc.state.redis_store",
    "ResilientStateStore": "extproc.state.resilient",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'extproc.state' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AffinitySpec",
    "Bucket",
    "BucketStatus",
    "ConsumeResult",
    "HealthRule",
    "HealthSpec",
    "LimitMatch",
    "LimitSpec",
    "MemoryStateStore",
    "RedisStateStore",
    "Reservation",
    "ResilientStateStore",
    "StateRules",
    "StateSpec",
    "StateStats",
    "StateStore",
    "StateUnavailable",
    "build_state_store",
    "compile_state_rules",
    "estimated_tokens",
    "format_reset",
    "limits_document",
    "rate_limit_error",
    "ratelimit_headers",
    "state_unavailable",
]
