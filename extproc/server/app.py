"""Run the ext_proc gRPC server (and its health service) until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

import grpc
from grpc_health.v1 import health_pb2_grpc

from extproc.config.settings import Settings
from extproc.config.watcher import ConfigWatcher
from extproc.runtime import Runtime
from extproc.server.health import Health
from extproc.server.servicer import add_to_server

# Envoy sends one message per phase; keep-alive pings let it notice a dead server fast.
_GRPC_OPTIONS = [
    ("grpc.so_reuseport", 1),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
]


async def serve(settings: Settings) -> int:
    """Serve until a termination signal, then drain within the grace period; exit code."""
    runtime = Runtime.create(settings)
    snapshot = runtime.snapshot
    log = runtime.log

    server = grpc.aio.server(options=_GRPC_OPTIONS)
    add_to_server(server, runtime)
    health = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    if settings.uds_path is not None:
        settings.uds_path.unlink(missing_ok=True)
        server.add_insecure_port(f"unix:{settings.uds_path}")
    await server.start()
    watcher = None
    if settings.reload_interval_ms:
        watcher = ConfigWatcher(
            settings.config_path,
            lambda: runtime.snapshot,
            lambda new: setattr(runtime, "snapshot", new),
            interval_s=settings.reload_interval_ms / 1000,
            debounce_s=settings.reload_debounce_ms / 1000,
            on_result=lambda ok: (
                runtime.stats.count_error("config_reload_rejected") if not ok else None
            ),
            log=log,
        )
        watcher.start()
    await health.set_all(serving=True)
    log.info(
        "routeiq serving ext_proc on %s:%d%s, config %s version %s",
        settings.grpc_host,
        port,
        f" and unix:{settings.uds_path}" if settings.uds_path else "",
        settings.config_path,
        snapshot.version,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("routeiq draining (grace %.1fs)", settings.grace_period_s)
    await health.set_draining()
    if watcher is not None:
        await watcher.stop()
    await server.stop(settings.grace_period_s)
    await runtime.close()
    log.info("routeiq stopped")
    return 0
