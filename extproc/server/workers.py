"""``routeiq serve --workers N``: N server processes on one gRPC port, one admin port.

Python decides on one core per process (the GIL); a pod with several cores needs
several processes. Each worker binds the same port with ``SO_REUSEPORT`` and the
kernel spreads incoming connections across them (Envoy must open more than one
connection for that to matter: the shipped configs cap streams per connection).
The parent decides nothing: it starts the workers, restarts one that dies, serves
the admin port with every worker's metrics merged, and on SIGTERM passes the signal
on and waits for the workers to drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from extproc.config.settings import Settings
from extproc.server.admin import AdminServer
from extproc.server.admin_access import AdminAccess
from extproc.telemetry.workers import aggregate_metrics

RESTART_DELAY_S = 1.0


def worker_env(settings: Settings, index: int, run_dir: Path) -> dict[str, str]:
    """The environment a worker is started with: the parent's settings, one worker."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[f"ROUTEIQ_{name.upper()}"] = str(text).lower() if isinstance(text, bool) else str(text)
    env["ROUTEIQ_WORKERS"] = "1"
    env["ROUTEIQ_WORKER_INDEX"] = str(index)
    env["ROUTEIQ_RUN_DIR"] = str(run_dir)
    if settings.uds_path is not None:  # one socket file per worker: a path cannot be shared
        env["ROUTEIQ_UDS_PATH"] = f"{settings.uds_path}.{index}"
    return env


def metrics_socket(run_dir: Path, index: int) -> Path:
    return run_dir / f"worker-{index}.sock"


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = Path(tempfile.mkdtemp(prefix="routeiq-workers-"))
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False
        self.restarts = 0

    async def _spawn(self, index: int) -> None:
        env = {**os.environ, **worker_env(self.settings, index, self.run_dir)}
        self.procs[index] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "extproc.cli",
            "serve",
            env=env,
        )

    async def _watch(self, index: int) -> None:
        log = logging.getLogger("routeiq")
        while True:
            code = await self.procs[index].wait()
            if self.stopping:
                return
            self.restarts += 1
            log.error("worker %d exited with %s; restarting it", index, code)
            await asyncio.sleep(RESTART_DELAY_S)
            if self.stopping:
                return
            await self._spawn(index)

    async def run(self) -> int:
        log = logging.getLogger("routeiq")
        n = self.settings.workers
        if self.settings.grpc_port == 0:
            log.error("--workers needs a fixed gRPC port: workers cannot share port 0")
            return 2
        sockets = [metrics_socket(self.run_dir, i) for i in range(n)]

        async def metrics() -> bytes:
            return await aggregate_metrics(sockets)

        async def ready() -> dict[str, bool]:
            return {f"worker-{i}": p.returncode is None for i, p in self.procs.items()}

        admin = AdminServer(
            None,
            metrics=metrics,
            ready=ready,
            log=log,
            access=AdminAccess.from_settings(self.settings),
        )
        # The admin port first: if it cannot be bound, no worker has been started yet.
        await admin.start(self.settings.admin_host, self.settings.admin_port)
        for i in range(n):
            await self._spawn(i)
        watchers = [asyncio.create_task(self._watch(i)) for i in range(n)]
        log.info("routeiq supervising %d workers on port %d", n, self.settings.grpc_port)

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.stopping = True
        for p in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        clean = True
        try:
            await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in self.procs.values())),
                self.settings.grace_period_s + 5,
            )
        except TimeoutError:
            clean = False
            for p in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        for w in watchers:
            w.cancel()
        await admin.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        codes = [p.returncode for p in self.procs.values()]
        log.info("routeiq workers stopped: %s (%d restarts)", codes, self.restarts)
        # Exit 0 when every worker stopped within the grace period; a worker that had died
        # earlier (and was being replaced) was already logged and does not fail the stop.
        return 0 if clean else 1
