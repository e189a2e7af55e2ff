"""``StateRules``: the ``spec.state`` section compiled for one config snapshot.

Pure functions of the request, no I/O: which limit buckets a request is charged to,
which session it belongs to, and the health rule. The counters themselves live in the
per-process ``StateStore``; a reload builds new rules and keeps the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.api.identity import Caller
from extproc.api.openai import Endpoint, ParsedRequest
from extproc.state.spec import AffinitySpec, HealthSpec, LimitSpec, StateSpec
from extproc.state.types import Bucket, HealthRule

_MAX_VALUE_LEN = 64


def _key_value(value: str) -> str:
    """A caller attribute as it appears in a key: itself when short and plain, else a hash
    (keys stay bounded and free of control characters whatever a header carries)."""
    if len(value) <= _MAX_VALUE_LEN and value.isprintable() and " " not in value:
        return value
    return "#" + hashlib.sha256(value.encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class _Limit:
    spec: LimitSpec
    models: frozenset[str]
    backends: frozenset[str]
    window_ms: int
    shared_id: str | None  # bucket id for callers without the attribute (None: skip)

    def applies(self, model: str | None, backend: str | None) -> bool:
        if self.models and model not in self.models:
            return False
        return not self.backends or backend in self.backends

    def bucket(self, caller: Caller) -> Bucket | None:
        value = (
            caller.team
            if self.spec.key == "team"
            else caller.user
            if self.spec.key == "user"
            else caller.api_key_hash
        )
        if value:
            bucket_id = f"{self.spec.name}:{self.spec.key}:{_key_value(value)}"
        elif self.shared_id is not None:
            bucket_id = self.shared_id
        else:
            return None
        return Bucket(
            bucket_id,
            self.spec.name,
            self.spec.requests_per_window,
            self.spec.tokens_per_window,
            self.window_ms,
        )


def compile_health_rule(spec: HealthSpec) -> HealthRule:
    codes = frozenset(s for s in spec.failure_statuses if isinstance(s, int))
    classes = frozenset(int(s[0]) for s in spec.failure_statuses if isinstance(s, str))
    return HealthRule(
        enabled=spec.enabled,
        threshold=spec.failure_threshold,
        window_ms=max(1, round(spec.window_seconds * 1000)),
        cooldown_ms=max(1, round(spec.cooldown_seconds * 1000)),
        failure_codes=codes,
        failure_classes=classes,
        sample_every=spec.sample_every,
    )


def _first_user_content(request: ParsedRequest) -> Any:
    """The first user turn as sent (any shape): it never changes within a conversation,
    unlike the last turn. None when the request has no user turn."""
    body = request.body
    if request.endpoint is Endpoint.CHAT_COMPLETIONS:
        items = body.get("messages")
    elif request.endpoint is Endpoint.RESPONSES:
        items = body.get("input")
        if not isinstance(items, list):
            return items
    else:
        return body.get("prompt", body.get("input"))
    if isinstance(items, list):
        for item in items:
            if isinstance(item, str):
                return item
            if isinstance(item, dict) and item.get("role") == "user":
                return item.get("content")
    return None


@dataclass(frozen=True, slots=True)
class StateRules:
    """Per-snapshot rules. Build with ``compile_state_rules``; share across requests."""

    limits: tuple[_Limit, ...]
    affinity: AffinitySpec
    health: HealthRule
    counts_tokens: bool = False  # a limit has a token budget: its usage is read back

    @property
    def affinity_ttl_s(self) -> float:
        return self.affinity.ttl_seconds

    def buckets_for(
        self, caller: Caller, model: str | None = None, backend: str | None = None
    ) -> tuple[Bucket, ...]:
        """Every bucket this request is charged to. A limit that matches on backends
        applies only once ``backend`` is known; call again after selection for those."""
        out = []
        for limit in self.limits:
            if limit.applies(model, backend):
                bucket = limit.bucket(caller)
                if bucket is not None:
                    out.append(bucket)
        return tuple(out)

    def session_key(
        self, request: ParsedRequest, caller: Caller, headers: Mapping[str, str] | None = None
    ) -> str | None:
        """The affinity key of this request's conversation, or None (affinity off, or
        nothing stable to key on). Scoped by caller so one tenant cannot steer another's
        sessions; hashed so header content never reaches Redis keys verbatim."""
        if not self.affinity.enabled:
            return None
        hdrs = request.headers if headers is None else headers
        scope = f"{caller.team or ''}\x1f{caller.user or ''}\x1f{caller.api_key_hash or ''}"
        session = hdrs.get(self.affinity.session_header)
        if session:
            material = b"h\x1f" + scope.encode() + b"\x1f" + session.encode()
        elif self.affinity.hash_fallback:
            first = _first_user_content(request)
            if first is None and not request.system_text:
                return None
            material = (
                b"p\x1f"
                + scope.encode()
                + b"\x1f"
                + request.system_text.encode()
                + b"\x1f"
                + orjson.dumps(first)
            )
        else:
            return None
        return hashlib.sha256(material).hexdigest()[:32]


def compile_state_rules(spec: StateSpec) -> StateRules:
    limits = tuple(
        _Limit(
            spec=limit,
            models=frozenset(limit.match.models),
            backends=frozenset(limit.match.backends),
            window_ms=max(1, round(limit.window_seconds * 1000)),
            shared_id=(
                f"{limit.name}:{limit.key}-missing" if limit.when_missing == "shared" else None
            ),
        )
        for limit in spec.limits
    )
    counts_tokens = any(limit.tokens_per_window for limit in spec.limits)
    return StateRules(limits, spec.affinity, compile_health_rule(spec.health), counts_tokens)


def estimated_tokens(request: ParsedRequest) -> int:
    """What the pre-check charges: the prompt estimate plus the requested output budget.
    ``reconcile`` later replaces it with the real ``usage.total_tokens``."""
    return request.prompt_tokens + (request.max_tokens or 0)
