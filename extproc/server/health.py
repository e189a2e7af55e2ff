"""gRPC health (``grpc.health.v1``) for the overall server, liveness, readiness and ext_proc."""

from __future__ import annotations

from grpc_health.v1 import health, health_pb2

EXT_PROC_SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
SERVICES = ("", "liveness", "readiness", EXT_PROC_SERVICE)


class Health:
    """Thin wrapper so the app can flip every reported service in one call."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]

    async def set_all(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in SERVICES:
            await self.servicer.set(name, status)

    async def set_draining(self) -> None:
        """Shutting down: stop taking new work but stay alive until the grace period ends."""
        for name in ("", "readiness", EXT_PROC_SERVICE):
            await self.servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
