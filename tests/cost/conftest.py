"""A real snapshot of tests/cost/cost.yaml (no router: explicit models and non-classifying
profiles decide without one), and a helper that writes a variant of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.snapshot import Snapshot, build_snapshot

COST_CONFIG = Path(__file__).with_name("cost.yaml")


def cost_snapshot(tmp: Path | None = None, **accounting: Any) -> Snapshot:
    """The cost config, with ``costAccounting`` replaced when keys are given."""
    path = COST_CONFIG
    if accounting:
        assert tmp is not None
        doc = yaml.safe_load(COST_CONFIG.read_text())
        doc["spec"]["costAccounting"] = accounting
        path = tmp / "cost.yaml"
        path.write_text(yaml.safe_dump(doc))
    return build_snapshot(path, with_policy=False, with_router=False)


@pytest.fixture
def snapshot() -> Iterator[Snapshot]:
    snap = cost_snapshot()
    yield snap
    snap.close()


def chat(model: str, team: str | None = None, stream: bool = False) -> ParsedRequest:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-team": team} if team else {}
    path = "/v1/chat/completions"
    return parse_request(Endpoint.CHAT_COMPLETIONS, "POST", path, headers, orjson.dumps(body))
