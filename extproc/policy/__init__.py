"""Rego policy: the ``PolicyEngine`` protocol, embedded and remote OPA engines, input builder.

Public API (what ``decide()`` and the CLI use)::

    engine = build_policy_engine(spec, base_dir)          # per snapshot; raises ConfigError
    findings = Detectors(spec.detectors).scan_body(request.body)
    doc = build_input(request, caller, host=..., profile=..., classification=...,
                      limits=..., findings=findings, include_raw_body=spec.include_raw_body,
                      raw_body=raw, redact=spec.redact_headers)
    result = await engine.evaluate(doc)                   # PolicyResult, never raises
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from extproc.policy.bundle import PolicyBundle, PolicyConfigError, load_bundle
    from extproc.policy.detectors import Detectors
    from extproc.policy.embedded import EmbeddedEngine
    from extproc.policy.engine import AllowAllEngine, PolicyEngine, build_policy_engine
    from extproc.policy.input import build_input, redact_headers, sample_input
    from extproc.policy.remote import RemoteOpaEngine
    from extproc.policy.result import DryRun, PolicyResult, parse_decision
    from extproc.policy.spec import OpaServerSpec, PolicySpec

# Each name is imported from its module on first use, so that reading the spec or the
# result types does not load the Rego engine or the HTTP client of the remote one.
_WHERE = {
    "PolicyBundle": "bundle",
    "PolicyConfigError": "bundle",
    "load_bundle": "bundle",
    "Detectors": "detectors",
    "EmbeddedEngine": "embedded",
    "AllowAllEngine": "engine",
    "PolicyEngine": "engine",
    "build_policy_engine": "engine",
    "build_input": "input",
    "redact_headers": "input",
    "sample_input": "input",
    "RemoteOpaEngine": "remote",
    "DryRun": "result",
    "PolicyResult": "result",
    "parse_decision": "result",
    "OpaServerSpec": "spec",
    "PolicySpec": "spec",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'extproc.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"extproc.policy.{module}"), name)


__all__ = [
    "AllowAllEngine",
    "Detectors",
    "DryRun",
    "EmbeddedEngine",
    "OpaServerSpec",
    "PolicyBundle",
    "PolicyConfigError",
    "PolicyEngine",
    "PolicyResult",
    "PolicySpec",
    "RemoteOpaEngine",
    "build_input",
    "build_policy_engine",
    "load_bundle",
    "parse_decision",
    "redact_headers",
    "sample_input",
]
