"""The ``spec.policy`` section of the RoutingConfig.

Everything the policy subsystem needs to build an engine is here, so that a snapshot
build can validate it before any file is read. Paths are relative to the directory
of the config file (the ``base_dir`` given to ``build_policy_engine``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from extproc.config.base import Spec

DetectorKind = Literal["email", "payment_card", "secret", "private_key"]

ALL_DETECTORS: tuple[DetectorKind, ...] = ("email", "payment_card", "secret", "private_key")

# Characters of prompt text the detectors scan per request; the rest is not scanned
# and the findings carry ``truncated: 1`` (extproc/policy/detectors.py).
DEFAULT_DETECTOR_MAX_CHARS = 131_072

# Header values that must never reach a policy (or a decision log) in clear text.
DEFAULT_REDACTED_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "cookie",
)


class OpaServerSpec(Spec):
    """Where the remote OPA server listens and how long a decision may take.

    ``timeoutMs`` bounds the whole round trip (connect + query); past it, the
    policy ``failureMode`` decides. ``tokenFile`` names a file holding a bearer token
    for OPA's ``--authentication=token`` mode: the token itself never sits in YAML.
    """

    url: str = Field(pattern=r"^https?://[A-Za-z0-9_.:\[\]-]+(:[0-9]{1,5})?/?$")
    timeout_ms: int = Field(100, gt=0, le=10_000)
    token_file: str | None = None


class PolicySpec(Spec):
    """Which Rego engine decides, what it loads, and what happens when it fails.

    - ``engine``: ``none`` allows everything, ``embedded`` runs Rego in process
      (regorus), ``opa`` asks a remote OPA server (``opa`` section required).
    - ``modules``/``data``: files or directories of ``.rego`` modules and of YAML/JSON
      data documents. Files ending in ``_test.rego`` are loaded only by
      ``routeiq policy test``.
    - ``failureMode``: what a request gets when the engine cannot answer (remote
      down or slow, evaluation error): ``open`` allows it and flags the result,
      ``closed`` refuses it with a 503.
    - ``dryRun``: evaluate and report, but never deny (the would-be denial is kept
      in ``PolicyResult.dry_run`` for the decision log).
    - ``evaluator`` (embedded): ``auto`` serves with regorus' compiled VM when it agrees
      with regorus' interpreter on the build-time probes, else with the interpreter;
      ``vm`` or ``interpreter`` force one.
    - ``detectors``: content detectors run over the prompt; their counts go to
      ``input.routeiq.findings``.
    - ``detectorMaxChars``: how many characters of prompt text the detectors scan per
      request (their cost is linear in it); past it the findings carry ``truncated: 1``,
      which a policy may treat as confidential to fail closed.
    - ``includeLimits``: put the caller's budget levels in ``input.routeiq.limits``
      (one read of the state store per request when limits are configured).
    """

    engine: Literal["none", "embedded", "opa"] = "none"
    query: str = Field("data.routeiq.decision", pattern=r"^data(\.[A-Za-z_][A-Za-z0-9_]*)+$")
    modules: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    failure_mode: Literal["open", "closed"] = "closed"
    deny_status: int = Field(403, ge=400, le=599)
    dry_run: bool = False
    include_raw_body: bool = False
    include_limits: bool = True
    evaluator: Literal["auto", "vm", "interpreter"] = "auto"
    detectors: tuple[DetectorKind, ...] = ALL_DETECTORS
    detector_max_chars: int = Field(DEFAULT_DETECTOR_MAX_CHARS, ge=1, le=64 * 1024 * 1024)
    redact_headers: tuple[str, ...] = DEFAULT_REDACTED_HEADERS
    opa: OpaServerSpec | None = None

    @model_validator(mode="after")
    def _engine_needs(self) -> PolicySpec:
        if self.engine == "opa" and self.opa is None:
            raise ValueError("engine 'opa' needs an 'opa' section with the server 'url'")
        if self.engine == "embedded" and not self.modules:
            raise ValueError("engine 'embedded' needs at least one entry in 'modules'")
        return self
