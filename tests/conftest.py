"""Fixtures that start and stop real processes on loopback ports they pick."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.stack import (
    REPO,
    Backends,
    EnvoyStack,
    envoy_for,
    routeiq_server,
    start_backend,
    start_litellm,
)

E2E_CONFIG = REPO / "tests" / "e2e" / "routeiq-e2e.yaml"


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def backends(workdir: Path) -> Iterator[Backends]:
    result = Backends(ports={})
    try:
        for cluster, name in (
            ("demo_eco", "eco"),
            ("demo_premium", "premium"),
            ("demo_local", "local"),
        ):
            proc, port = start_backend(name, workdir)
            result.procs.append(proc)
            result.ports[cluster] = port
        proc, port = start_litellm(workdir)
        result.procs.append(proc)
        result.ports["litellm"] = port
        yield result
    finally:
        for p in result.procs:
            p.stop()


@pytest.fixture(scope="session")
def routeiq_port(workdir: Path) -> Iterator[int]:
    with routeiq_server(E2E_CONFIG, workdir) as (_, port):
        yield port


@pytest.fixture(scope="session")
def envoy(workdir: Path, routeiq_port: int, backends: Backends) -> Iterator[EnvoyStack]:
    stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, routeiq_port, backends)
    yield stack
    stack.envoy.stop()
