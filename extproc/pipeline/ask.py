"""Resolve stage: what the client asked for, after aliases and profiles."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from extproc.api.errors import model_not_found
from extproc.config.backend import Backend
from extproc.config.snapshot import Snapshot
from extproc.pipeline.refusal import Refusal
from extproc.routing.profiles import (
    Profile,
    profile_from_header,
    profile_from_model,
    profile_model,
)


@dataclass(frozen=True, slots=True)
class Ask:
    """An explicit model (``profile`` None) or a profile, with the backends that may serve it."""

    profile: Profile | None
    candidates: tuple[Backend, ...]
    upstream_models: Mapping[str, str]  # backend name -> model name the backend knows
    public_names: Mapping[str, str]  # backend name -> public model name (for limits)


def lookup(snapshot: Snapshot, model: str, headers: Mapping[str, str]) -> Ask | None:
    """An explicit model (or alias), a profile name, or None when nothing has that name."""
    routes = snapshot.models.get(model)
    if routes is not None:
        return Ask(
            None,
            tuple(r.backend for r in routes),
            {r.backend.name: r.model.upstream_name for r in routes},
            {r.backend.name: r.model.name for r in routes},
        )
    profile = profile_from_model(model)
    if profile is None:
        return None
    if profile is Profile.AUTO:
        profile = profile_from_header(headers) or profile
    backends = snapshot.spec.backends
    models = {b.name: profile_model(b, profile) for b in backends}
    return Ask(
        profile,
        backends,
        {name: m.upstream_name for name, m in models.items()},
        {name: m.name for name, m in models.items()},
    )


def resolve(snapshot: Snapshot, model: str, headers: Mapping[str, str]) -> Ask:
    """Like :func:`lookup`; an unknown name refuses with 404 ``model_not_found``."""
    ask = lookup(snapshot, model, headers)
    if ask is None:
        raise Refusal(model_not_found(model))
    return ask
