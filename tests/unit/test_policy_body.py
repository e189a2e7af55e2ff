"""What a policy sees of the body through decide(), and the deny body it may send back."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

from extproc.api.openai import Endpoint, parse_request
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Decision, Outcome

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  backends:
    - {name: a, cluster: ca, models: [m1]}
  policy:
    engine: embedded
    modules: [p.rego]
    includeRawBody: {raw}
"""
# Denies a prompt by its text (only possible with the raw body), with its own error body.
REGO = """package routeiq
import rego.v1
default decision := {"allowed": true}
decision := {
  "allowed": false,
  "http_status": 451,
  "message": "project codename in prompt",
  "body": {"error": {"message": "Codenames stay inside.", "type": "policy", "code": "codename"}},
} if {
  some m in input.parsed_body.messages
  contains(m.content, "bluebird")
}
"""


def snapshot(tmp_path: Path, raw: bool) -> Snapshot:
    (tmp_path / "p.rego").write_text(REGO)
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.replace("{raw}", str(raw).lower()))
    return build_snapshot(path, with_router=False)


async def ask(snap: Snapshot, text: str) -> Decision:
    body = json.dumps({"model": "m1", "messages": [{"role": "user", "content": text}]})
    request = parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, body.encode()
    )
    return await decide(request, snap)


async def test_the_prompt_reaches_policies_only_with_include_raw_body(tmp_path: Path) -> None:
    without = snapshot(tmp_path, raw=False)
    assert (await ask(without, "plan for bluebird")).outcome is Outcome.ROUTED
    with_raw = snapshot(tmp_path, raw=True)
    assert (await ask(with_raw, "plan for lunch")).outcome is Outcome.ROUTED
    denied = await ask(with_raw, "plan for bluebird")
    assert denied.outcome is Outcome.DENIED and denied.error is not None
    assert denied.error.status == 451
    assert orjson.loads(denied.error.body()) == {
        "error": {"message": "Codenames stay inside.", "type": "policy", "code": "codename"}
    }
    without.close()
    with_raw.close()
