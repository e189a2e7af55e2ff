"""The compiled, immutable view of one RoutingConfig that every request reads.

A snapshot is built completely (YAML validated, indexes derived, policies compiled,
models loaded and verified) before anything reads it, and it is never changed after:
a reload builds a new one and swaps one reference. A request keeps the snapshot it
started with for its whole life, so a reload never changes a decision half-way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from extproc.api.api_keys import ApiKeyTable, load_api_keys
from extproc.api.identity import IdentitySpec
from extproc.api.jwt_auth import JwtVerifier
from extproc.config.errors import ConfigError
from extproc.config.safe_yaml import load_yaml, read_bounded
from extproc.config.schema import Backend, RoutingConfig, RoutingConfigSpec, ServedModel
from extproc.policy import Detectors, PolicyEngine, build_policy_engine
from extproc.routing import Router, build_router
from extproc.routing.rankers import Ranker, load_ranker, tier_then_cost
from extproc.state import StateRules, compile_state_rules


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """Where an explicitly named model goes, and the name the backend knows it by."""

    backend: Backend
    model: ServedModel


@dataclass(frozen=True, slots=True)
class Snapshot:
    config: RoutingConfig
    version: str
    base_dir: Path
    backends: Mapping[str, Backend]
    models: Mapping[str, tuple[ModelRoute, ...]]  # public model name (and aliases) -> routes
    default_backend: Backend
    policy: PolicyEngine | None  # None: no policy configured (nothing to evaluate)
    detectors: Detectors | None  # content detectors feeding the policy input
    router: Router | None  # None only in tools that skip model loading
    state_rules: StateRules
    jwt: JwtVerifier | None = None  # verifies bearer tokens when identity.jwt is set
    api_keys: ApiKeyTable | None = None  # issued keys when identity.apiKeys is set
    ranker: Ranker = tier_then_cost  # orders usable backends (spec.ranker)

    @property
    def spec(self) -> RoutingConfigSpec:
        return self.config.spec

    @property
    def ready(self) -> dict[str, bool]:
        """What readiness reports: every engine this snapshot needs is built."""
        return {
            "policy": self.policy is None or self.policy.ready,
            "router": self.router is not None,
        }

    def close(self) -> None:
        """Release engine resources once no request uses this snapshot any more."""
        if self.policy is not None:
            self.policy.close()


def load_config(path: Path) -> tuple[RoutingConfig, bytes]:
    """Read and validate a RoutingConfig file; ``ConfigError`` says what and where.

    Any file content gives a ``ConfigError``, never another exception: size, nesting
    and alias expansion are bounded (``extproc.config.safe_yaml``).
    """
    raw = read_bounded(path)
    doc = load_yaml(raw, str(path))
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold one RoutingConfig object")
    try:
        return RoutingConfig.model_validate(doc), raw
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigError(f"{path} is not a valid RoutingConfig:\n" + "\n".join(lines)) from None


def _referenced_files(base_dir: Path, paths: Iterable[str]) -> list[Path]:
    found: list[Path] = []
    for rel in paths:
        p = (base_dir / rel).resolve()
        if p.is_dir():
            found.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            found.append(p)
    return found


def config_version(raw: bytes, files: Iterable[Path]) -> str:
    """A short content hash of the config and every file it references."""
    digest = hashlib.sha256(raw)
    for f in files:
        digest.update(str(f).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def _model_index(config: RoutingConfig) -> dict[str, tuple[ModelRoute, ...]]:
    index: dict[str, list[ModelRoute]] = {}
    for backend in config.spec.backends:
        for model in backend.models:
            index.setdefault(model.name, []).append(ModelRoute(backend, model))
    for alias, target in config.spec.aliases.items():
        index.setdefault(alias, []).extend(index[target])
    return {name: tuple(routes) for name, routes in index.items()}


def _api_keys(identity: IdentitySpec, base_dir: Path) -> ApiKeyTable | None:
    return load_api_keys(base_dir / identity.api_keys) if identity.api_keys else None


def build_snapshot(
    path: Path,
    *,
    with_policy: bool = True,
    with_router: bool = True,
) -> Snapshot:
    """Build and warm a snapshot from a RoutingConfig file, or raise ``ConfigError``.

    ``with_policy`` / ``with_router`` exist for tools that only need the backend view
    (``routeiq config validate`` without engines); the server always builds both.
    """
    config, raw = load_config(path)
    base_dir = path.resolve().parent
    spec = config.spec
    backends = {b.name: b for b in spec.backends}
    default = backends[spec.default_backend] if spec.default_backend else spec.backends[0]
    keys = spec.identity.jwt.public_keys if spec.identity.jwt else ()
    if spec.identity.api_keys:
        keys = (*keys, spec.identity.api_keys)
    files = _referenced_files(base_dir, (*spec.policy.modules, *spec.policy.data, *keys))

    policy = None
    detectors = None
    if with_policy and spec.policy.engine != "none":
        policy = build_policy_engine(spec.policy, base_dir)
        detectors = (
            Detectors(spec.policy.detectors, spec.policy.detector_max_chars)
            if spec.policy.detectors
            else None
        )
    router = build_router(spec.routing, base_dir) if with_router else None
    semantic = spec.cache.enabled and spec.cache.semantic.enabled
    if router is not None and semantic and not router.embedder.matches_paraphrases:
        raise ConfigError(
            f"cache.semantic needs an embedder that tells paraphrases from different "
            f"questions; routing.embedder '{spec.routing.embedder}' does not (a static "
            "embedder served wrong answers on most semantic hits, docs/cache.md): turn "
            "cache.semantic off or route with the MiniLM embedder"
        )

    return Snapshot(
        config=config,
        version=config_version(raw, files),
        base_dir=base_dir,
        backends=MappingProxyType(backends),
        models=MappingProxyType(_model_index(config)),
        default_backend=default,
        policy=policy,
        detectors=detectors,
        router=router,
        state_rules=compile_state_rules(spec.state),
        ranker=load_ranker(spec.ranker),
        jwt=JwtVerifier(spec.identity.jwt, base_dir) if spec.identity.jwt else None,
        api_keys=load_api_keys(base_dir / spec.identity.api_keys)
        if spec.identity.api_keys
        else None,
    )
