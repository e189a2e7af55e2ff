"""The ``PolicyEngine`` protocol and ``build_policy_engine``, the one factory.

An engine is built once per config snapshot and shared by all its requests. Building
reads every file, compiles, and evaluates a probe input (test-compile): a broken
module, missing file or malformed decision raises ``PolicyConfigError`` (a
``ConfigError``) naming the file and line, so a hot reload keeps the last good
snapshot. ``evaluate`` never raises for engine trouble: it returns the operator's
failure-mode result with ``engine_unavailable`` set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from extproc.policy.bundle import PolicyConfigError, load_bundle
from extproc.policy.embedded import build_embedded
from extproc.policy.input import probe_inputs
from extproc.policy.remote import RemoteOpaEngine
from extproc.policy.result import PolicyResult, allow_all
from extproc.policy.spec import PolicySpec


@runtime_checkable
class PolicyEngine(Protocol):
    """What ``decide()`` calls: one evaluation per request, on the caller's event loop."""

    name: str

    @property
    def ready(self) -> bool:
        """False while the engine cannot answer (remote OPA down); for readiness and metrics."""
        ...

    async def evaluate(self, input_doc: Mapping[str, Any]) -> PolicyResult:
        """The decision for one input document; never raises for engine failures."""
        ...

    def close(self) -> None:
        """Release resources (best effort, synchronous)."""
        ...

    async def aclose(self) -> None:
        """Release resources from the event loop (preferred when one is running)."""
        ...


class AllowAllEngine:
    """``engine: none``: every request passes, no constraint, no cost."""

    name = "none"
    ready = True

    def __init__(self) -> None:
        self._result = allow_all(self.name)

    async def evaluate(self, input_doc: Mapping[str, Any]) -> PolicyResult:
        return self._result

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _read_token(spec: PolicySpec, base_dir: Path) -> str | None:
    if spec.opa is None or spec.opa.token_file is None:
        return None
    path = Path(spec.opa.token_file)
    path = path if path.is_absolute() else base_dir / path
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PolicyConfigError(f"cannot read the OPA token file {path}: {exc.strerror}") from None
    if not token:
        raise PolicyConfigError(f"the OPA token file {path} is empty")
    return token


def build_policy_engine(spec: PolicySpec, base_dir: Path) -> PolicyEngine:
    """Build, compile and test the engine the spec asks for.

    ``embedded`` loads ``spec.modules`` and ``spec.data`` (relative to ``base_dir``),
    compiles them and evaluates ``spec.query`` on a sample input. ``opa`` does not
    contact the server here (it may start after RouteIQ; per-request failures follow
    ``failureMode``); ``routeiq policy eval --config`` checks a server by hand.
    """
    fail_open = spec.failure_mode == "open"
    if spec.engine == "none":
        return AllowAllEngine()
    if spec.engine == "opa":
        assert spec.opa is not None  # guaranteed by PolicySpec validation
        return RemoteOpaEngine(
            spec.opa.url,
            spec.query,
            timeout_s=spec.opa.timeout_ms / 1000,
            deny_status=spec.deny_status,
            dry_run=spec.dry_run,
            fail_open=fail_open,
            token=_read_token(spec, base_dir),
        )
    bundle = load_bundle(spec.modules, spec.data, base_dir)
    if not bundle.modules:
        raise PolicyConfigError(f"only test modules (*_test.rego) found in {list(spec.modules)}")
    return build_embedded(
        bundle,
        spec.query,
        probe_inputs(bundle.data, include_raw_body=spec.include_raw_body),
        deny_status=spec.deny_status,
        dry_run=spec.dry_run,
        fail_open=fail_open,
        evaluator=spec.evaluator,
    )
