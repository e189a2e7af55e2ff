"""Builders shared by the answer cache tests: requests, snapshots, answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.snapshot import Snapshot, build_snapshot
from tests.fixtures.configs import write_config

SUPPORT = {"authorization": "Bearer sk-demo-support"}  # issued in config/api-keys.yaml
RESEARCH = {"authorization": "Bearer sk-demo-research"}


def chat(
    text: str = "What is the capital of France?",
    headers: dict[str, str] | None = None,
    endpoint: Endpoint = Endpoint.CHAT_COMPLETIONS,
    **body: Any,
) -> ParsedRequest:
    """A parsed chat request at temperature 0 (``body`` adds or replaces fields)."""
    doc: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
    }
    doc.update(body)
    return parse_request(
        endpoint, "POST", "/v1/" + endpoint.value, headers or {}, json.dumps(doc).encode()
    )


def completion(text: str = "Paris.", finish: str = "stop", **extra: Any) -> bytes:
    """An OpenAI chat.completion body as a backend sends it."""
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17},
        **extra,
    }
    return json.dumps(doc).encode()


@pytest.fixture
def snapshot_with(tmp_path: Path) -> Callable[..., Snapshot]:
    """The e2e RoutingConfig (issued API keys, demo backends) with ``spec`` fields set."""

    def make(**spec: Any) -> Snapshot:
        return build_snapshot(write_config(tmp_path / "c.yaml", **spec))

    return make
