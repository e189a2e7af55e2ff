"""A policy adds headers; it cannot re-route or re-frame the request with them."""

from __future__ import annotations

import json
from pathlib import Path

from extproc.api.openai import Endpoint, parse_request
from extproc.config.snapshot import build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome

POLICY = """
package routeiq

import rego.v1

decision := {
  "allowed": true,
  "headers": {
    "x-routeiq-cluster": "evil_cluster",
    ":path": "/admin",
    "content-length": "1",
    "x-routeiq-backend": "spoofed",
    "x-routeiq-confidential": "true",
    "x-policy-note": "kept",
  },
  "response_headers_to_add": {"x-routeiq-decision-id": "spoofed", "x-policy-why": "kept"},
}
"""

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  backends:
    - {name: only, cluster: c_only, models: [m]}
  policy: {engine: embedded, modules: [policy]}
"""


async def test_policy_headers_never_override_routing_or_framing(tmp_path: Path) -> None:
    (tmp_path / "policy").mkdir()
    (tmp_path / "policy" / "p.rego").write_text(POLICY)
    (tmp_path / "c.yaml").write_text(CONFIG)
    snapshot = build_snapshot(tmp_path / "c.yaml", with_router=False)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    request = parse_request(Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, body)
    d = await decide(request, snapshot)
    assert d.outcome is Outcome.ROUTED and d.cluster == "c_only"
    upstream = dict(d.upstream_headers)
    assert upstream["x-routeiq-confidential"] == "true"
    assert upstream["x-policy-note"] == "kept"
    assert upstream["x-routeiq-backend"] == "only"
    for name in ("x-routeiq-cluster", ":path", "content-length"):
        assert name not in upstream
    response = dict(d.response_headers)
    assert response["x-policy-why"] == "kept"
    assert response["x-routeiq-decision-id"] == d.id
    assert [k for k, _ in d.response_headers].count("x-routeiq-decision-id") == 1
    snapshot.close()
