"""The ``spec.cache`` section of the RoutingConfig: the answer cache and its safety rules.

Off by default. When on, a request that passed policy (and is eligible, see
``extproc.cache.rules``) is looked up by an exact key (the normalised request) and,
with ``semantic.enabled``, for short prompts also by meaning (the embedding of its
last user turn, within the same tenant, model or profile, earlier turns, parameters
and literals). See docs/cache.md.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from extproc.config.base import Spec


class SemanticCacheSpec(Spec):
    """Matching by meaning: the cosine of the last user turn's embedding."""

    enabled: bool = Field(
        False,
        description="Also match by meaning when no exact entry exists. Off by default: "
        "a sentence embedding scores some different questions (swapped terms, antonyms) "
        "as near-identical; docs/cache.md measures the trade-off.",
    )
    threshold: float = Field(
        0.92,
        ge=0.5,
        le=1.0,
        description="Lowest cosine similarity that counts as the same question "
        "(docs/cache.md measures precision per threshold).",
    )
    max_chars: int = Field(
        400,
        ge=16,
        le=2000,
        description="Longer last user turns match exactly only: the embedder reads a "
        "bounded window, and text past it must not be ignored.",
    )
    scan_limit: int = Field(
        256,
        ge=1,
        le=4096,
        description="Most recent entries of one tenant and conversation frame compared.",
    )


class CacheSpec(Spec):
    """Answer repeated questions from the gateway. Policy and budgets still run first."""

    enabled: bool = Field(False, description="Turn the answer cache on.")
    by_default: bool = Field(
        True,
        description="Eligible requests use the cache unless a policy decides `cache: "
        "false`; false: only requests whose policy decides `cache: true`.",
    )
    store: Literal["memory", "redis"] = Field(
        "memory",
        description="memory: per process; redis: shared by replicas (ROUTEIQ_REDIS_URL). "
        "A store that fails is skipped, never failing a request.",
    )
    ttl_seconds: int = Field(3600, ge=1, le=30 * 86400, description="Lifetime of an entry.")
    max_entries_per_tenant: int = Field(
        1000, ge=1, le=1_000_000, description="Oldest entries of a tenant are evicted past it."
    )
    max_entries: int = Field(
        20_000,
        ge=1,
        le=10_000_000,
        description="memory store: entries of all tenants together in one process.",
    )
    max_entry_bytes: int = Field(
        256 * 1024, ge=1024, le=4 * 1024 * 1024, description="Larger answers are not stored."
    )
    partition: Literal["team", "user"] = Field(
        "team",
        description="Who shares entries: team (then user, then API key), or user (then "
        "API key). Only trusted identities count (spec.identity).",
    )
    anonymous: Literal["bypass", "shared"] = Field(
        "bypass",
        description="Callers with no identity: bypass the cache, or share one partition.",
    )
    max_temperature: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Requests sampling at a higher temperature bypass the cache.",
    )
    default_temperature: float = Field(
        1.0,
        ge=0,
        le=2,
        description="Temperature assumed when a request names none (OpenAI's default).",
    )
    charge: Literal["free", "usage"] = Field(
        "free",
        description="A hit consumes no budget (free), or the recorded usage of the cached "
        "answer from the caller's budgets (usage; over budget is a 429 as usual).",
    )
    namespace: str = Field(
        "",
        max_length=64,
        description="Mixed into every key: change it to start from an empty cache.",
    )
    semantic: SemanticCacheSpec = SemanticCacheSpec()
