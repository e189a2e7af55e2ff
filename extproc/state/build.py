"""Construction of the per-process ``StateStore`` from ``Settings``.

The store is process-scoped: build it once at start-up, pass it to every snapshot,
``await store.aclose()`` at shutdown. Config reloads compile new ``StateRules``
(``compile_state_rules(spec.state)``) and keep the store and its connections.
"""

from __future__ import annotations

import logging

from extproc.config.settings import Settings
from extproc.state.memory import MemoryStateStore
from extproc.state.redis_store import RedisStateStore
from extproc.state.resilient import ResilientStateStore
from extproc.state.types import StateStore


def build_state_store(
    settings: Settings,
    *,
    probe_interval_s: float = 0.5,
    health_cache_s: float = 1.0,
    logger: logging.Logger | None = None,
) -> StateStore:
    """``memory``: a ``MemoryStateStore``. ``redis``: a ``RedisStateStore`` wrapped in a
    ``ResilientStateStore`` applying ``settings.state_failure_mode``.

    No I/O happens here (connections open on first use); ``await store.ping()`` at
    start-up to report readiness. The Redis URL is read from the secret setting and is
    never logged.
    """
    if settings.state_backend == "memory":
        return MemoryStateStore()
    redis = RedisStateStore.connect(
        settings.redis_url.get_secret_value(),
        prefix=settings.redis_prefix,
        timeout_s=settings.redis_timeout_ms / 1000,
        health_cache_s=health_cache_s,
    )
    return ResilientStateStore(
        redis,
        mode=settings.state_failure_mode,
        probe_interval_s=probe_interval_s,
        logger=logger,
    )
