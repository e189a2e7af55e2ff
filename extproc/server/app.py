"""Run the ext_proc gRPC server (health, admin, hot reload) until SIGTERM/SIGINT.

On the signal: readiness goes to draining, the watcher stops, the gRPC server stops
taking new streams and lets those in flight finish within the grace period, then the
rest closes. No shutdown step can skip the drain: each is guarded, and the watcher
never raises (a config file it could not read was already logged and counted).

One process (``workers == 1``) serves gRPC and the admin port itself. With
``--workers N`` the supervisor (``extproc.server.workers``) starts N of these, each
told its index: a worker serves gRPC and its metrics on a Unix socket, and the
supervisor serves the one admin port.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
from collections.abc import Awaitable

import grpc
from grpc_health.v1 import health_pb2_grpc

from extproc.config.settings import Settings
from extproc.config.watcher import watch_runtime
from extproc.runtime import Runtime
from extproc.server.admin import AdminServer, local_metrics
from extproc.server.health import Health
from extproc.server.servicer import add_to_server
from extproc.server.workers import Supervisor, metrics_socket
from extproc.telemetry import WorkerMetricsServer

_GRPC_OPTIONS = [
    ("grpc.so_reuseport", 1),  # workers share the port
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


async def serve(settings: Settings) -> int:
    """Serve until a termination signal, then drain within the grace period; exit code."""
    if settings.workers > 1:
        return await Supervisor(settings).run()
    index = settings.worker_index
    runtime = Runtime.create(settings, instance=None if index is None else f"worker-{index}")
    # Everything built so far (snapshot, models, engines) lives as long as the process:
    # keep it out of the collector's full passes, which otherwise walk it on the loop
    # (measured: 93-117 ms pauses under the long fuzz run, 2 ms after a freeze).
    gc.collect()
    gc.freeze()
    log = runtime.log

    server = grpc.aio.server(options=_GRPC_OPTIONS)
    add_to_server(server, runtime)
    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    try:
        port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    except RuntimeError:  # grpc's way of saying the address is taken (raced the CLI check)
        await runtime.close()
        raise OSError(
            errno.EADDRINUSE, f"cannot listen for gRPC on {settings.grpc_host}:{settings.grpc_port}"
        ) from None
    if settings.uds_path is not None:
        settings.uds_path.unlink(missing_ok=True)
        server.add_insecure_port(f"unix:{settings.uds_path}")
    await server.start()

    admin: AdminServer | None = None
    worker_metrics: WorkerMetricsServer | None = None
    assert runtime.telemetry is not None
    if index is None:
        admin = AdminServer(runtime, metrics=local_metrics(runtime.telemetry), log=log)
        try:
            await admin.start(settings.admin_host, settings.admin_port)
        except OSError:
            await server.stop(0)
            await runtime.close()
            raise
    elif settings.run_dir is not None:
        worker_metrics = WorkerMetricsServer(
            runtime.telemetry.prometheus_text, metrics_socket(settings.run_dir, index)
        )
        await worker_metrics.start()

    watcher = watch_runtime(runtime)
    await health.set_all(serving=True)
    log.info(
        "routeiq serving ext_proc on %s:%d%s, config %s version %s",
        settings.grpc_host,
        port,
        f" and unix:{settings.uds_path}" if settings.uds_path else "",
        settings.config_path,
        runtime.snapshot.version,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("routeiq draining (grace %.1fs)", settings.grace_period_s)
    await health.set_draining()
    if watcher is not None:
        await _step(log, "stopping the config watcher", watcher.stop())
    await server.stop(settings.grace_period_s)
    if admin is not None:
        await _step(log, "closing the admin port", admin.close())
    if worker_metrics is not None:
        await _step(log, "closing the worker metrics socket", worker_metrics.close())
    await _step(log, "closing the runtime", runtime.close())
    log.info("routeiq stopped")
    return 0


async def _step(log: logging.Logger, what: str, step: Awaitable[None]) -> None:
    """One shutdown step; a failure is one log line, and the remaining steps still run
    (the streams in flight are drained whatever a watcher or exporter did)."""
    try:
        await step
    except Exception as exc:
        log.error("%s failed: %s", what, type(exc).__name__)
