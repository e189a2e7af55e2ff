"""Metrics of two real worker processes aggregated behind one admin /metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from extproc.server.admin import AdminServer
from extproc.telemetry import aggregate_metrics, scrape_worker
from tests.ops.conftest import REPO


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[tuple[list[Path], list[subprocess.Popen[str]]]]:
    run_dir = Path("/tmp") / f"riq-ops-{tmp_path.name}"  # short: sun_path is ~107 bytes
    run_dir.mkdir(exist_ok=True)
    specs = [("worker-0", 5, "eco"), ("worker-1", 7, "eco")]
    paths = [run_dir / f"{name}.sock" for name, _, _ in specs]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.ops.worker_proc", str(p), str(n), backend],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for p, (_, n, backend) in zip(paths, specs, strict=True)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        yield paths, procs
    finally:
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        for p in paths:
            p.unlink(missing_ok=True)
        run_dir.rmdir()


def families(text: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text.decode())
    }


async def test_two_worker_processes_are_summed(
    workers: tuple[list[Path], list[subprocess.Popen[str]]],
) -> None:
    paths, procs = workers
    alone = families(await scrape_worker(paths[0]))
    assert alone["routeiq_decisions"][0][2] == 5

    merged = families(await aggregate_metrics(paths))
    (decisions,) = merged["routeiq_decisions"]
    assert decisions == (
        "routeiq_decisions_total",
        {"backend": "eco", "profile": "auto", "outcome": "routed"},
        12,
    )
    hist = {(n, s.get("le")): v for n, s, v in merged["routeiq_decision_duration_seconds"]}
    assert hist[("routeiq_decision_duration_seconds_count", None)] == 12
    assert hist[("routeiq_decision_duration_seconds_bucket", "+Inf")] == 12
    # 5 -> 1,2,3,1,2 ms and 7 -> 1,2,3,1,2,3,1 ms: five of them at 1 ms.
    assert hist[("routeiq_decision_duration_seconds_bucket", "0.001")] == 5
    assert hist[("routeiq_decision_duration_seconds_sum", None)] == pytest.approx(0.022)
    assert merged["routeiq_config_info"] == [("routeiq_config_info", {"version": "v1"}, 2)]
    up = {s["worker"]: v for _, s, v in merged["routeiq_worker_up"]}
    assert up == {"worker-0": 1, "worker-1": 1}

    # The parent's admin serves the same aggregate over HTTP.
    admin = AdminServer(None, metrics=lambda: aggregate_metrics(paths))
    port = await admin.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        (decisions,) = families(response.content)["routeiq_decisions"]
        assert decisions[2] == 12
    finally:
        await admin.close()

    # A worker that is gone stops counting and shows as down.
    assert procs[1].stdin is not None
    procs[1].stdin.close()
    procs[1].wait(10)
    merged = families(await aggregate_metrics(paths, timeout_s=1.0))
    assert merged["routeiq_decisions"][0][2] == 5
    up = {s["worker"]: v for _, s, v in merged["routeiq_worker_up"]}
    assert up == {"worker-0": 1, "worker-1": 0}
