"""``routeiq serve --workers 2``: the supervisor's dashboard shows the whole group.

Its panels come from the same merged Prometheus text as its ``/metrics``, so decisions
and costs add up over both workers. The live stream is per process and the supervisor
decides nothing: its stream says so instead of staying silent.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from extproc.demo.processes import ManagedProcess, free_port, wait_for_port
from tests.dashboard.conftest import DASHBOARD_CONFIG
from tests.fixtures.stack import REPO, Backends, envoy_for

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})


def summary(admin_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{admin_port}/dashboard/api/summary"
    with urllib.request.urlopen(url, timeout=10) as r:
        doc: dict[str, Any] = json.loads(r.read())
        return doc


def test_supervisor_dashboard_sums_the_workers(demo_backends: Backends, tmp_path: Path) -> None:
    grpc_port, admin_port = free_port(), free_port()
    proc = ManagedProcess(
        [sys.executable, "-m", "extproc.cli", "serve", "--config", str(DASHBOARD_CONFIG),
         "--port", str(grpc_port), "--workers", "2"],
        tmp_path / "workers.log",
        env={"ROUTEIQ_ADMIN_PORT": str(admin_port), "ROUTEIQ_DECISION_LOG": "off"},
    )  # fmt: skip
    stack = None
    try:
        wait_for_port(grpc_port, 90, proc.proc)
        wait_for_port(admin_port, 90, proc.proc)
        stack = envoy_for(REPO / "envoy" / "routeiq-fail-closed.yaml", tmp_path, grpc_port,
                          demo_backends)  # fmt: skip
        deadline = time.monotonic() + 90
        while summary(admin_port)["workers"] != {"worker-0": 1, "worker-1": 1}:
            assert time.monotonic() < deadline, "workers did not come up"
            time.sleep(0.5)
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: stack.post(CHAT, BODY.encode())[0], range(60)))
        assert statuses == [200] * 60
        doc = summary(admin_port)
        assert doc["decisions"]["total"] == 60  # both workers' counters, summed
        assert doc["decisions"]["by_backend"] == {"eco": 60}
        # usage read on every response: 60 x (10 x 0.15 + 12 x 0.60) per million
        assert doc["cost"]["by_backend"]["eco"]["cost_usd"] == pytest.approx(60 * 8.7e-6)
        assert doc["reload_history"] is None and doc["budgets"] is None  # per process
        assert sum(doc["config_versions"].values()) == 2  # one per worker
        url = f"http://127.0.0.1:{admin_port}/dashboard/api/stream"
        with urllib.request.urlopen(url, timeout=10) as r:
            assert r.readline() == b": connected\n"
            r.readline()
            event, data = r.readline(), r.readline()
        assert event == b"event: info\n" and b"per process" in data
    finally:
        if stack is not None:
            stack.envoy.stop()
        proc.stop()
