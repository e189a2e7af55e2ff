"""A request whose own constraints no backend can meet is a 4xx, not a retryable 503."""

from __future__ import annotations

import json
from pathlib import Path

from extproc.api.openai import Endpoint, parse_request
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome

REPO = Path(__file__).resolve().parents[2]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


async def test_confidential_with_tools_is_a_400_naming_why() -> None:
    """Confidential content must stay in-cluster (shipped policy), and the only
    in-cluster backend has no tools: nothing can ever serve it, so retrying is useless.
    (An explicit cloud model with confidential content is a 403: only policy excludes.)"""
    snapshot = build_snapshot(REPO / "config" / "routeiq.yaml", with_router=False)
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "Refund card 4111 1111 1111 1111 please."}],
        "tools": [TOOL],
    }
    request = parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, json.dumps(body).encode()
    )
    d = await decide(request, snapshot)
    assert d.outcome is Outcome.DENIED and d.error is not None
    assert (d.error.status, d.error.code) == (400, "unsatisfiable_request")
    assert "not in-cluster" in d.error.message
    snapshot.close()
