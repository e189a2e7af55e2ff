"""Process settings: the one place environment variables are read (prefix ``ROUTEIQ_``).

Everything about routing and policy lives in the operator's YAML; these are the
knobs of the process itself (where it listens, how many workers, where state and
telemetry go). Invalid values fail at start-up with the name of the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """RouteIQ process settings. Each field is read from ``ROUTEIQ_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ROUTEIQ_", frozen=True, extra="ignore")

    config_path: Path = Field(
        Path("config/routeiq.yaml"), description="The RoutingConfig YAML file to load and watch."
    )
    grpc_host: str = Field("127.0.0.1", description="Address the ext_proc gRPC server binds.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="ext_proc gRPC port (0 picks one).")
    uds_path: Path | None = Field(
        None, description="Also listen on this Unix socket (sidecar pattern)."
    )
    admin_host: str = Field("127.0.0.1", description="Address of the admin HTTP server.")
    admin_port: int = Field(
        9180, ge=0, le=65535, description="Admin HTTP port: health, metrics, explain, config."
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token for /v1/explain and /v1/config. Unset: those routes are "
        "served only when admin_host is loopback (403 otherwise); probes stay open.",
    )
    admin_explain_max_bytes: int = Field(
        1024 * 1024, gt=0, le=8 * 1024 * 1024, description="Largest /v1/explain body (413)."
    )
    admin_explain_concurrency: int = Field(
        2, ge=1, le=64, description="Explains running at once; more get 429 with Retry-After."
    )
    admin_explain_timeout_s: float = Field(
        10.0, gt=0, description="Longest one explain may take (503 past it)."
    )
    workers: int = Field(1, ge=1, le=64, description="Server processes sharing the gRPC port.")
    worker_index: int | None = Field(
        None, ge=0, description="Set by the supervisor in each worker (do not set by hand)."
    )
    run_dir: Path | None = Field(
        None, description="Set by the supervisor: where workers put their metrics sockets."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the process."
    )
    log_prompts: bool = Field(
        False, description="Put prompt text in decision logs (off: prompts are redacted)."
    )
    decision_log: Literal["off", "stdout", "file"] = Field(
        "stdout", description="Where decision log lines (JSON) go."
    )
    decision_log_path: Path = Field(
        Path("routeiq-decisions.jsonl"), description="Decision log file when decision_log=file."
    )
    decision_log_max_bytes: int = Field(
        50 * 1024 * 1024, gt=0, description="Rotate the decision log file past this size."
    )
    decision_log_backups: int = Field(5, ge=0, description="Rotated decision log files kept.")
    state_backend: Literal["memory", "redis"] = Field(
        "memory", description="Where budgets, affinity and health live."
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL (may hold a password)."
    )
    redis_prefix: str = Field("routeiq:", description="Prefix of every Redis key RouteIQ writes.")
    redis_timeout_ms: int = Field(
        50, gt=0, description="Per-command Redis timeout; slower counts as unavailable."
    )
    state_failure_mode: Literal["open", "closed"] = Field(
        "open", description="Redis down: open keeps serving on local state, closed refuses."
    )
    otel_exporter: Literal["none", "otlp"] = Field(
        "none", description="Trace/metric exporter besides the Prometheus endpoint."
    )
    otel_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of root traces kept; a caller's sampled traceparent always wins.",
    )
    otlp_endpoint: str = Field(
        "http://127.0.0.1:4317", description="OTLP collector endpoint when otel_exporter=otlp."
    )
    reload_interval_ms: int = Field(
        1000, ge=0, description="How often the config is checked for changes (0: never)."
    )
    reload_debounce_ms: int = Field(
        500, ge=0, description="Wait this long after a config change before rebuilding."
    )
    analysis_threads: int = Field(
        1,
        ge=1,
        le=32,
        description="Threads that run embeddings and content scans off the event loop.",
    )
    analysis_timeout_ms: int = Field(
        250,
        gt=0,
        description="Per-request budget for that work; past it the request is routed "
        "without a classification (and its content scan counts as incomplete).",
    )
    analysis_max_pending: int = Field(
        64,
        ge=1,
        description="Analysis jobs queued or running at once; more are degraded at once.",
    )
    grace_period_s: float = Field(
        20.0, ge=0, description="On SIGTERM, time given to streams in flight before exit."
    )
