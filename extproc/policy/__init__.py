"""Rego policy: the ``PolicyEngine`` protocol, embedded and remote OPA engines, input builder.

Public API (what ``decide()`` and the CLI use)::

    engine = build_policy_engine(spec, base_dir)          # per snapshot; raises ConfigError
    findings = Detectors(spec.detectors).scan_body(request.body)
    doc = build_input(request, caller, host=..., profile=..., classification=...,
                      limits=..., findings=findings, include_raw_body=spec.include_raw_body,
                      raw_body=raw, redact=spec.redact_headers)
    result = await engine.evaluate(doc)                   # PolicyResult, never raises
"""

from extproc.policy.bundle import PolicyBundle, PolicyConfigError, load_bundle
from extproc.policy.detectors import Detectors
from extproc.policy.embedded import EmbeddedEngine
from extproc.policy.engine import AllowAllEngine, PolicyEngine, build_policy_engine
from extproc.policy.input import build_input, redact_headers, sample_input
from extproc.policy.remote import RemoteOpaEngine
from extproc.policy.result import DryRun, PolicyResult, parse_decision
from extproc.policy.spec import OpaServerSpec, PolicySpec

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
