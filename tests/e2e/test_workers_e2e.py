"""`routeiq serve --workers 2`: two processes share the gRPC port behind one Envoy,
one admin port merges their metrics, a dead worker is replaced."""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from extproc.demo.processes import ManagedProcess, free_port, wait_for_port
from tests.fixtures.configs import write_config
from tests.fixtures.stack import REPO, Backends, envoy_for

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"


def worker_pids(supervisor: int) -> list[int]:
    """Live (not zombie) child processes of ``supervisor``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == supervisor and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return sorted(pids)


def metrics(admin_port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_two_workers_share_the_port(workdir: Path, backends: Backends, tmp_path: Path) -> None:
    config = write_config(tmp_path / "routeiq.yaml")
    grpc_port, admin_port = free_port(), free_port()
    proc = ManagedProcess(
        [
            os.sys.executable,
            "-m",
            "extproc.cli",
            "serve",
            "--config",
            str(config),  # type: ignore[attr-defined]
            "--port",
            str(grpc_port),
        ],
        workdir / "workers.log",
        env={
            "ROUTEIQ_WORKERS": "2",
            "ROUTEIQ_ADMIN_PORT": str(admin_port),
            "ROUTEIQ_DECISION_LOG": "off",
        },
    )
    stack = None
    try:
        wait_for_port(grpc_port, 60, proc.proc)
        wait_for_port(admin_port, 60, proc.proc)
        deadline = time.monotonic() + 60
        while len(worker_pids(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = worker_pids(proc.pid)
        assert len(workers) == 2
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", workdir, grpc_port, backends)
        body = json.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        ).encode()
        time.sleep(2)  # both workers listening
        # 48 in flight: Envoy opens about 12 connections (4 streams each, see the shipped
        # config), so the kernel's SO_REUSEPORT hashing puts some on each worker (all on
        # one worker has probability 2 * 2**-12).
        with ThreadPoolExecutor(48) as pool:
            statuses = list(pool.map(lambda _: stack.post(CHAT, body)[0], range(200)))  # type: ignore[union-attr]
        assert statuses == [200] * 200

        m = metrics(admin_port)
        up = {dict(k[1])["worker"]: v for k, v in m.items() if k[0] == "routeiq_worker_up"}
        assert up == {"worker-0": 1.0, "worker-1": 1.0}
        total = sum(v for k, v in m.items() if k[0] == "routeiq_decisions_total")
        assert total == 200  # merged across both workers

        # Both workers did some of the work (the kernel spreads Envoy's connections).
        from asyncio import run

        from extproc.telemetry import scrape_worker

        run_dir = max(
            Path(tempfile.gettempdir()).glob("routeiq-workers-*/worker-0.sock"),
            key=lambda p: p.stat().st_mtime,
        ).parent
        per_worker = []
        for i in range(2):
            text = run(scrape_worker(run_dir / f"worker-{i}.sock")).decode()
            per_worker.append(
                sum(
                    s.value
                    for f in text_string_to_metric_families(text)
                    for s in f.samples
                    if s.name == "routeiq_decisions_total"
                )
            )
        assert sum(per_worker) == 200
        assert min(per_worker) > 0, per_worker

        # A worker that dies is replaced; the other keeps serving meanwhile.
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(0.5)  # Envoy drops its connections to the dead worker (its streams are lost)
        assert [stack.post(CHAT, body)[0] for _ in range(10)] == [200] * 10
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = worker_pids(proc.pid)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        assert len(worker_pids(proc.pid)) == 2
    finally:
        if stack is not None:
            stack.envoy.stop()
        assert proc.stop(30) == 0
    assert "restarting it" in proc.output()
