"""The policy input document the server builds for one request, for the CLI to show.

Not a second builder: the real ``decide()`` runs on the request (identity, resolve,
analysis, policy), with the snapshot's policy engine wrapped in a recorder that keeps
the document it is asked to evaluate. What ``routeiq policy input`` prints is therefore
exactly what the engine saw, minus budget levels (no state store is consulted:
``routeiq.limits`` is null, as with ``spec.policy.includeLimits`` off).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from extproc.api.errors import ApiError
from extproc.api.openai import Endpoint, parse_request
from extproc.api.paths import match_endpoint
from extproc.policy.engine import PolicyEngine
from extproc.policy.result import PolicyResult


class RequestRefused(Exception):
    """The server would refuse the request before any policy sees it (or none is set)."""


class _Recorder:
    """A policy engine that keeps each input document, then asks the real engine."""

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine
        self.name = engine.name
        self.inputs: list[Mapping[str, Any]] = []

    @property
    def ready(self) -> bool:
        return self._engine.ready

    async def evaluate(self, input_doc: Mapping[str, Any]) -> PolicyResult:
        self.inputs.append(input_doc)
        return await self._engine.evaluate(input_doc)

    def close(self) -> None:
        self._engine.close()

    async def aclose(self) -> None:
        await self._engine.aclose()


async def request_input(
    config: Path, body: bytes, headers: Mapping[str, str], path: str = "/v1/chat/completions"
) -> dict[str, Any]:
    """The input document ``config``'s policy gets for this request (a ``RequestRefused``
    says why there is none); raises ``ConfigError`` for a config that does not build."""
    from extproc.config.snapshot import build_snapshot
    from extproc.decide import decide

    snapshot = build_snapshot(config)
    try:
        if snapshot.policy is None:
            raise RequestRefused(f"{config} has no policy section: no input document is built")
        recorder = _Recorder(snapshot.policy)
        lowered = {k.lower(): v for k, v in headers.items()}
        endpoint = match_endpoint(path, snapshot.spec.path_prefix) or Endpoint.CHAT_COMPLETIONS
        try:
            request = parse_request(endpoint, "POST", path, lowered, body)
        except ApiError as error:
            raise RequestRefused(_refused(error)) from None
        decision = await decide(request, dataclasses.replace(snapshot, policy=recorder))
        if not recorder.inputs:
            assert decision.error is not None
            raise RequestRefused(_refused(decision.error))
        return dict(recorder.inputs[0])
    finally:
        snapshot.close()


def _refused(error: ApiError) -> str:
    return (
        f"the server refuses this request before any policy runs: "
        f"{error.status} {error.code or error.type}: {error.message}"
    )
