"""``GET <pathPrefix>/models`` answered from the config, in OpenAI's list format.

Clients (the official SDKs, LiteLLM, chat UIs) list models to learn what they may ask
for. Behind RouteIQ that is not what any one backend serves: it is every model the
config's backends serve, every alias and every routing profile. So RouteIQ answers
``GET``/``HEAD`` on ``<pathPrefix>/models`` and ``<pathPrefix>/models/{id}`` itself;
nothing reaches a backend. Each entry is an OpenAI model object (``id``, ``object``,
``created``, ``owned_by``) plus ``routeiq``: what the name is (``model``, ``alias`` or
``profile``) and, for a model, the backends that serve it.

Pure functions of the config: no I/O, no state.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from extproc.api.errors import model_not_found
from extproc.api.paths import canonical_path, split_target
from extproc.config.schema import RoutingConfigSpec
from extproc.routing.profiles import Profile

LISTING_METHODS = frozenset({"GET", "HEAD"})
OWNER = "routeiq"
_CONTENT_TYPE = (("content-type", "application/json"),)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete HTTP answer RouteIQ sends in place of the upstream's."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = _CONTENT_TYPE


def _entry(name: str, owner: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": owner,
        "routeiq": {"kind": kind, **extra},
    }


def model_entries(spec: RoutingConfigSpec) -> list[dict[str, Any]]:
    """Every public name the config answers to: served models (in backend order), then
    aliases, then profiles; each name once."""
    served: dict[str, list[str]] = {}
    owners: dict[str, str] = {}
    for backend in spec.backends:
        for model in backend.models:
            served.setdefault(model.name, []).append(backend.name)
            owners.setdefault(model.name, backend.provider)
    entries = [
        _entry(name, owners[name], "model", backends=backends) for name, backends in served.items()
    ]
    entries += [
        _entry(alias, OWNER, "alias", target=target)
        for alias, target in spec.aliases.items()
        if alias not in served
    ]
    taken = {e["id"] for e in entries}
    entries += [_entry(p.value, OWNER, "profile") for p in Profile if p.value not in taken]
    return entries


def _model_id(target: str, prefix: str) -> str | None:
    """The ``{id}`` of ``<prefix>/models/{id}`` with its case kept (ids are case-sensitive;
    the prefix and ``models`` are not), or None for another path."""
    path, _ = split_target(target)
    segments = [s for s in unquote(path).split("/") if s]
    depth = len([s for s in prefix.split("/") if s])
    if len(segments) <= depth + 1 or segments[depth].lower() != "models":
        return None
    return "/".join(segments[depth + 1 :])


def models_reply(spec: RoutingConfigSpec, method: str, target: str) -> Reply | None:
    """RouteIQ's own answer to a models request, or None when ``method target`` is not
    one (the request then follows the usual path rules)."""
    if method not in LISTING_METHODS:
        return None
    prefix = spec.path_prefix.lower()
    canonical = canonical_path(split_target(target)[0])
    if canonical is None or not canonical.startswith(prefix + "/models"):
        return None
    entries = model_entries(spec)
    if canonical == prefix + "/models":
        doc: dict[str, Any] = {"object": "list", "data": entries}
        return Reply(200, json.dumps(doc, separators=(",", ":")).encode())
    if not canonical.startswith(prefix + "/models/"):
        return None
    wanted = _model_id(target, prefix)
    found = next((e for e in entries if e["id"] == wanted), None)
    if found is None:
        error = model_not_found(wanted or "")
        return Reply(error.status, error.body())
    return Reply(200, json.dumps(found, separators=(",", ":")).encode())
