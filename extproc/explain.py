"""``routeiq explain``: the full decision for one request body, nothing forwarded.

Same view as the admin port's ``POST /v1/explain``; without a state store, so no
budget is charged and no session pinned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint, parse_request
from extproc.api.paths import match_endpoint
from extproc.config.snapshot import Snapshot
from extproc.decide import decide
from extproc.server.admin_views import decision_view


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
    return decision_view(await decide(parsed, snapshot))
