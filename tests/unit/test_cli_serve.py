"""``routeiq serve`` flags: --admin-host/--admin-port and --workers take effect in a real
server process; a busy port or a bad value is one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc.cli import port_problem
from extproc.demo.processes import ManagedProcess, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "e2e" / "routeiq-e2e.yaml"
QUIET = {"ROUTEIQ_DECISION_LOG": "off", "ROUTEIQ_LOG_LEVEL": "warning"}


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    """``routeiq serve`` expected to stop on its own (it fails before serving)."""
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", "serve", "--config", str(CONFIG), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**_env(), **QUIET},
    )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ROUTEIQ_")}


def get_json(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def listener() -> Iterator[int]:
    """A port another process already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def _start(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> ManagedProcess:
    cmd = [sys.executable, "-m", "extproc.cli", "serve", "--config", str(CONFIG), *args]
    return ManagedProcess(cmd, tmp_path / "serve.log", env={**QUIET, **(env or {})})


def test_admin_flags_override_the_environment(tmp_path: Path) -> None:
    grpc_port, admin_port, env_admin_port = free_port(), free_port(), free_port()
    proc = _start(
        tmp_path,
        "--port",
        str(grpc_port),
        "--admin-host",
        "127.0.0.1",
        "--admin-port",
        str(admin_port),
        env={"ROUTEIQ_ADMIN_PORT": str(env_admin_port), "ROUTEIQ_ADMIN_HOST": "0.0.0.0"},
    )
    try:
        wait_for_port(admin_port, 60, proc.proc)
        wait_for_port(grpc_port, 10, proc.proc)
        assert get_json(admin_port, "/healthz") == (200, {"status": "ok"})
        status, config = get_json(admin_port, "/v1/config")
        assert status == 200
        assert config["settings"]["admin_port"] == admin_port
        assert config["settings"]["admin_host"] == "127.0.0.1"
        assert port_problem("127.0.0.1", env_admin_port) is None  # nothing took that one
    finally:
        assert proc.stop() == 0, proc.output()


def test_workers_flag_starts_that_many_workers(tmp_path: Path) -> None:
    grpc_port, admin_port = free_port(), free_port()
    proc = _start(
        tmp_path, "--port", str(grpc_port), "--admin-port", str(admin_port), "--workers", "2"
    )
    try:
        wait_for_port(admin_port, 60, proc.proc)
        deadline = time.monotonic() + 90
        ready: tuple[int, Any] = (0, None)
        while time.monotonic() < deadline:
            ready = get_json(admin_port, "/readyz")
            if ready[0] == 200:
                break
            time.sleep(0.5)
        assert ready == (200, {"ready": True, "checks": {"worker-0": True, "worker-1": True}})
        wait_for_port(grpc_port, 60, proc.proc)
        # Both workers answer the parent's aggregated scrape.
        deadline = time.monotonic() + 60
        up: list[str] = []
        while time.monotonic() < deadline and len(up) < 2:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
                text = r.read().decode()
            up = [line for line in text.splitlines() if line.startswith("routeiq_worker_up{")]
            up = [line for line in up if line.endswith(" 1.0")]
            time.sleep(0.5)
        assert len(up) == 2, up
    finally:
        assert proc.stop() == 0, proc.output()


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_busy_grpc_port_is_one_line(listener: int) -> None:
    line = _one_line(serve("--port", str(listener), "--admin-port", str(free_port())))
    assert (
        line == f"routeiq: cannot listen for gRPC on 127.0.0.1:{listener}: address already in use"
    )


def test_busy_admin_port_is_one_line(listener: int) -> None:
    line = _one_line(serve("--port", "0", "--admin-port", str(listener)))
    assert (
        line == f"routeiq: cannot listen for admin on 127.0.0.1:{listener}: address already in use"
    )


def test_port_shared_by_reuseport_is_still_busy() -> None:
    # gRPC sets SO_REUSEPORT so that workers share a port; a second RouteIQ must not join
    # a port a first one holds.
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_problem("127.0.0.1", port) == "address already in use"
    assert port_problem("127.0.0.1", 0) is None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--workers", "0"),
            "routeiq: invalid --workers: Input should be greater than or equal to 1",
        ),
        (("--admin-port", "70000"), "routeiq: invalid --admin-port: Input should be less than"),
    ],
)
def test_bad_flag_value_is_one_line(args: tuple[str, ...], expected: str) -> None:
    assert _one_line(serve(*args)).startswith(expected)


def test_busy_port_with_workers_is_one_line(listener: int) -> None:
    line = _one_line(
        serve("--port", str(listener), "--admin-port", str(free_port()), "--workers", "2")
    )
    assert "cannot listen for gRPC" in line
