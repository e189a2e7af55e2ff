"""What the admin endpoints return: the explanation of a decision, redacted config views.

Redaction is by shape, not by a list of today's fields, so a section added tomorrow
is covered too: a key whose name says secret (``token``, ``secret``, ``password``,
``credential``, ``privateKey``, ``url`` of a store...) has its value replaced, and any
URL with ``user:password@`` loses that part. File *paths* to secrets (``tokenFile``)
are redacted as well: they tell an attacker where to look.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from extproc.api.openai import ParsedRequest
from extproc.decision import Decision

if TYPE_CHECKING:
    from extproc.config.settings import Settings
    from extproc.config.snapshot import Snapshot

REDACTED = "[redacted]"
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SECRET_WORDS = frozenset({"token", "secret", "password", "passwd", "credential", "credentials"})
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def secret_key(key: str) -> bool:
    """Whether a config/settings key names a secret (``tokenFile``, ``redis_url``...).

    Whole words only: ``maxTokens`` and ``apiKeyHeaders`` are not secrets.
    """
    words = [w.lower() for w in _WORD.findall(key)]
    if _SECRET_WORDS.intersection(words):
        return True
    if words[-2:] in (["api", "key"], ["private", "key"]):
        return True
    return bool(words) and words[-1] == "url" and "redis" in words


def redact(value: Any, key: str = "") -> Any:
    """``value`` with secret-looking keys' values and URL credentials removed."""
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, key) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if key and secret_key(key):
        return REDACTED
    if isinstance(value, str) and "@" in value:
        return _USERINFO.sub(rf"\1{REDACTED}@", value)
    return value


def config_view(snapshot: Snapshot, settings: Settings | None) -> dict[str, Any]:
    """``GET /v1/config``: the served version, the RoutingConfig and process settings."""
    doc: dict[str, Any] = {
        "version": snapshot.version,
        "config": redact(snapshot.config.model_dump(mode="json", by_alias=True)),
    }
    if settings is not None:
        doc["settings"] = redact(settings.model_dump(mode="json"))
    return doc


def request_view(request: ParsedRequest) -> dict[str, Any]:
    """What RouteIQ understood of the request (never the prompt text)."""
    return {
        "endpoint": request.endpoint.value,
        "model": request.model,
        "stream": request.stream,
        "max_tokens": request.max_tokens,
        "prompt_tokens_estimate": request.prompt_tokens,
        "tokens_needed": request.total_tokens_needed,
        "message_count": request.message_count,
        "tool_count": request.tool_count,
        "needed_capabilities": sorted(request.needed_capabilities),
    }


def decision_view(decision: Decision) -> dict[str, Any]:
    """Every field of the decision, plus its structured explanation."""
    error = decision.error
    explain = dict(decision.explain)
    return {
        "id": decision.id,
        "outcome": decision.outcome.value,
        "allowed": decision.allowed,
        "config_version": decision.config_version,
        "requested_model": decision.requested_model,
        "profile": decision.profile,
        "backend": decision.backend,
        "cluster": decision.cluster,
        "upstream_model": decision.upstream_model,
        "rewrite_body": decision.rewrite_body,
        "body_overrides": dict(decision.body_overrides),
        "accounting": decision.accounting,
        "fallbacks": list(decision.fallbacks),
        "category": decision.category,
        "tier": decision.tier,
        "strategy": decision.strategy,
        "variant": decision.variant,
        "classification": explain.get("classification"),
        "policy": explain.get("policy"),
        "excluded": explain.get("excluded", {}),
        "reasons": list(decision.reasons),
        "rule_ids": list(decision.rule_ids),
        "error": (
            {
                "status": error.status,
                "message": error.message,
                "type": error.type,
                "code": error.code,
                "param": error.param,
            }
            if error is not None
            else None
        ),
        "upstream_headers": dict(decision.upstream_headers),
        "response_headers": dict(decision.response_headers),
        "explain": explain,
    }
