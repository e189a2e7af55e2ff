"""Real processes for the dashboard tests: the demo backends, RouteIQ and Envoy."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from extproc.demo.processes import ManagedProcess, free_port, wait_for_port
from tests.fixtures.stack import (
    REPO,
    Backends,
    EnvoyStack,
    envoy_for,
    routeiq_server,
    start_backend,
)

DASHBOARD_CONFIG = Path(__file__).with_name("dashboard.yaml")
TOKEN = "dashboard-test-token-123"


@dataclass
class Served:
    """RouteIQ behind Envoy, with its admin port."""

    routeiq: ManagedProcess
    admin_port: int
    envoy: EnvoyStack

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


@pytest.fixture(scope="module")
def demo_backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backends]:
    workdir = tmp_path_factory.mktemp("dashboard-backends")
    result = Backends(ports={})
    try:
        for cluster, name in (("demo_eco", "eco"), ("demo_premium", "premium"),
                              ("demo_local", "local")):  # fmt: skip
            proc, port = start_backend(name, workdir, stream_delay=0.01)
            result.procs.append(proc)
            result.ports[cluster] = port
        yield result
    finally:
        for p in result.procs:
            p.stop()


def serve(workdir: Path, backends: Backends, **env: str) -> Iterator[Served]:
    admin_port = free_port()
    settings = {"ROUTEIQ_ADMIN_PORT": str(admin_port), "ROUTEIQ_DECISION_LOG": "off", **env}
    with routeiq_server(DASHBOARD_CONFIG, workdir, settings) as (proc, port):
        wait_for_port(admin_port, 30, proc.proc)
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, port, backends)
        try:
            yield Served(proc, admin_port, stack)
        finally:
            stack.envoy.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, demo_backends: Backends) -> Iterator[Served]:
    yield from serve(tmp_path_factory.mktemp("dashboard"), demo_backends)
