"""``routeiq config validate``: is a RoutingConfig usable, and does the proxy agree with it?

Builds the snapshot exactly as the server would (YAML validated, policies compiled and
test-evaluated, models verified by hash and loaded), then, given an Envoy config,
checks that every backend's ``cluster`` value reaches a cluster: either a route that
matches the route header exactly and names an existing cluster, or (no such routes)
a cluster of that name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from extproc.config.errors import ConfigError
from extproc.config.snapshot import Snapshot, build_snapshot


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def envoy_routes(envoy: dict[str, Any], header: str) -> tuple[set[str], dict[str, str]]:
    """Cluster names of an Envoy bootstrap, and route-header value -> routed cluster."""
    clusters = {
        c["name"]
        for c in envoy.get("static_resources", {}).get("clusters", [])
        if isinstance(c, dict) and "name" in c
    }
    routes: dict[str, str] = {}
    for node in _walk(envoy):
        match, action = node.get("match"), node.get("route")
        if not isinstance(match, dict) or not isinstance(action, dict):
            continue
        for h in match.get("headers", []):
            if h.get("name") != header:
                continue
            exact = (h.get("string_match") or {}).get("exact") or h.get("exact_match")
            if exact and "cluster" in action:
                routes[exact] = action["cluster"]
    return clusters, routes


def check_envoy(snapshot: Snapshot, envoy_path: Path) -> list[str]:
    """Problems with how ``envoy_path`` routes this config's backends (empty: none)."""
    try:
        envoy = yaml.safe_load(envoy_path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [f"cannot read Envoy config {envoy_path}: {exc}"]
    header = snapshot.spec.route_header
    clusters, routes = envoy_routes(envoy, header)
    problems = []
    for backend in snapshot.spec.backends:
        if routes:
            target = routes.get(backend.cluster)
            if target is None:
                problems.append(
                    f"backend '{backend.name}': no route matches {header}: {backend.cluster}"
                )
            elif target not in clusters:
                problems.append(
                    f"backend '{backend.name}': route for {backend.cluster} names missing "
                    f"cluster '{target}'"
                )
        elif backend.cluster not in clusters:
            problems.append(f"backend '{backend.name}': Envoy has no cluster '{backend.cluster}'")
    return problems


def validate(
    config_path: Path, envoy_path: Path | None = None
) -> tuple[Snapshot | None, list[str]]:
    """The snapshot (when it builds) and every problem found."""
    try:
        snapshot = build_snapshot(config_path)
    except ConfigError as exc:
        return None, [str(exc)]
    problems = check_envoy(snapshot, envoy_path) if envoy_path is not None else []
    return snapshot, problems
