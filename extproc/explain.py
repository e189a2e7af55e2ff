"""``routeiq explain``: the full decision for one request body, nothing forwarded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint, match_endpoint, parse_request
from extproc.config.snapshot import Snapshot
from extproc.decide import decide
from extproc.decision import Decision


def decision_document(decision: Decision) -> dict[str, Any]:
    """A JSON-ready view of a decision (what admin ``/v1/explain`` and the CLI print)."""
    doc: dict[str, Any] = {
        "decision_id": decision.id,
        "outcome": decision.outcome.value,
        "config_version": decision.config_version,
        "requested_model": decision.requested_model,
        "profile": decision.profile,
        "backend": decision.backend,
        "cluster": decision.cluster,
        "upstream_model": decision.upstream_model,
        "fallbacks": list(decision.fallbacks),
        "category": decision.category,
        "tier": decision.tier,
        "strategy": decision.strategy,
        "variant": decision.variant,
        "reasons": list(decision.reasons),
        "rule_ids": list(decision.rule_ids),
        "upstream_headers": dict(decision.upstream_headers),
        "response_headers": dict(decision.response_headers),
        "explain": dict(decision.explain),
    }
    if decision.error is not None:
        doc["error"] = {
            "status": decision.error.status,
            "code": decision.error.code,
            "message": decision.error.message,
        }
    return doc


async def explain_request(
    snapshot: Snapshot,
    body: bytes,
    headers: Mapping[str, str],
    path: str = "/v1/chat/completions",
) -> dict[str, Any]:
    """Parse and decide one request exactly as the server would, without state."""
    lowered = {k.lower(): v for k, v in headers.items()}
    endpoint = match_endpoint(path, snapshot.spec.path_prefix) or Endpoint.CHAT_COMPLETIONS
    try:
        parsed = parse_request(endpoint, "POST", path, lowered, body)
    except ApiError as error:
        return {
            "outcome": "denied",
            "error": {"status": error.status, "code": error.code, "message": error.message},
        }
    return decision_document(await decide(parsed, snapshot))
