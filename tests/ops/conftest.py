"""Fixtures of the operations tests: a Runtime on the shipped demo config, telemetry with
the SDK's in-memory exporters, and request helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from extproc.api.openai import ParsedRequest, parse_request
from extproc.api.paths import match_endpoint
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.runtime import Runtime
from extproc.state import build_state_store
from extproc.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[2]
DEMO_CONFIG = REPO / "config" / "routeiq.yaml"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"config_path": DEMO_CONFIG, "decision_log": "off", **overrides}
    return Settings(**values)


@pytest.fixture(scope="session")
def snapshot() -> Iterator[Snapshot]:
    snap = build_snapshot(DEMO_CONFIG)
    yield snap
    snap.close()


@pytest.fixture
async def runtime(snapshot: Snapshot) -> AsyncIterator[Runtime]:
    settings = make_settings()
    yield Runtime(settings=settings, snapshot=snapshot, state=build_state_store(settings))


def chat(
    model: str = "gpt-4o",
    text: str = "hello",
    headers: Mapping[str, str] | None = None,
    path: str = "/v1/chat/completions",
    **extra: Any,
) -> ParsedRequest:
    endpoint = match_endpoint(path)
    assert endpoint is not None
    if path.endswith("chat/completions"):
        body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}]}
    elif path.endswith("embeddings") or path.endswith("responses"):
        body = {"model": model, "input": text}
    else:
        body = {"model": model, "prompt": text}
    body.update(extra)
    return parse_request(endpoint, "POST", path, dict(headers or {}), orjson.dumps(body))


class Captured:
    """A Telemetry whose spans and metrics land in memory."""

    def __init__(self, sample_ratio: float = 1.0, traced: bool = True) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        processors = [SimpleSpanProcessor(self.spans)] if traced else []
        self.telemetry = Telemetry.from_settings(
            make_settings(),
            instance="test",
            span_processors=processors,
            metric_readers=[self.metrics],
            sample_ratio=sample_ratio,
        )

    def points(self, name: str) -> list[Any]:
        """Points of metric ``name``: from the SDK reader, or the request-path histograms
        (which every exporter adds to what the SDK collects)."""
        data = self.metrics.get_metrics_data()
        assert data is not None
        metrics = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        metrics += self.telemetry.histograms.metrics()
        return [p for m in metrics if m.name == name for p in m.data.data_points]


@pytest.fixture
def captured() -> Iterator[Captured]:
    c = Captured()
    yield c
    c.telemetry.shutdown()
