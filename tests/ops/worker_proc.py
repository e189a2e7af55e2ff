"""A stand-in worker process: records N decisions, serves its metrics on a Unix socket.

Run as ``python -m tests.ops.worker_proc SOCKET N BACKEND``; prints ``ready`` once the
socket listens and exits when stdin closes (the parent's handle on its lifetime).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from extproc.config.settings import Settings
from extproc.decision import Decision, Outcome
from extproc.telemetry import Telemetry, WorkerMetricsServer


async def main(socket_path: Path, n: int, backend: str) -> None:
    telemetry = Telemetry.from_settings(Settings(decision_log="off"), instance=socket_path.stem)
    telemetry.set_config_version("v1")
    decision = Decision(
        id="d", outcome=Outcome.ROUTED, config_version="v1", requested_model="m",
        backend=backend, upstream_model="m", profile="auto",
    )  # fmt: skip
    for i in range(n):
        telemetry.record_decision(decision, None, 0.001 * (i % 3 + 1))
    telemetry.record_reload(True, "v1")
    server = WorkerMetricsServer(telemetry.prometheus_text, socket_path)
    await server.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    await server.close()
    telemetry.shutdown()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
