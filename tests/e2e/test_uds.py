"""The sidecar pattern: ext_proc (and gRPC health) also served on a Unix socket."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import E2E_CONFIG
from tests.fixtures.stack import routeiq_server

pytestmark = pytest.mark.e2e


def test_unix_socket_serves_health_and_ext_proc(workdir: Path, tmp_path: Path) -> None:
    sock = tmp_path / "routeiq.sock"
    with routeiq_server(E2E_CONFIG, workdir, {"ROUTEIQ_UDS_PATH": str(sock)}):
        assert sock.exists()
        with grpc.insecure_channel(f"unix:{sock}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in ("", "envoy.service.ext_proc.v3.ExternalProcessor"):
                got = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert got.status == health_pb2.HealthCheckResponse.SERVING
