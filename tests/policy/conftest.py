"""Shared fixtures: the shipped policies, built once, and the real-OPA fixture server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.policy import EmbeddedEngine, PolicySpec, build_policy_engine
from tests.fixtures.opa_server import OpaServer

REPO = Path(__file__).resolve().parents[2]
SHIPPED = PolicySpec(engine="embedded", modules=("policies",), data=("policies/data",))


def request_doc(
    team: str | None = "somebody",
    model: str = "gpt-4o",
    *,
    prompt_tokens: int = 100,
    max_tokens: int | None = 100,
    headers: dict[str, str] | None = None,
    findings: dict[str, int] | None = None,
) -> dict[str, Any]:
    """A minimal input document in the shape build_input produces."""
    return {
        "attributes": {
            "request": {
                "http": {
                    "method": "POST",
                    "path": "/v1/chat/completions",
                    "host": "gw",
                    "headers": headers or {},
                }
            }
        },
        "parsed_path": ["v1", "chat", "completions"],
        "parsed_query": {},
        "parsed_body": {"model": model},
        "routeiq": {
            "model": model,
            "profile": None,
            "prompt_tokens": prompt_tokens,
            "max_tokens": max_tokens,
            "stream": False,
            "tool_count": 0,
            "caller": {"team": team, "user": None, "api_key_hash": None},
            "classification": None,
            "limits": None,
            "findings": findings or {},
        },
    }


@pytest.fixture(scope="module")
def shipped() -> Iterator[EmbeddedEngine]:
    engine = build_policy_engine(SHIPPED, REPO)
    assert isinstance(engine, EmbeddedEngine)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def opa_server() -> Iterator[OpaServer]:
    server = OpaServer.start()
    yield server
    server.stop()
