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

from extproc.config.errors import ConfigError
from extproc.config.safe_yaml import load_yaml, one_line, read_bounded
from extproc.config.snapshot import Snapshot, build_snapshot


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in ``node``, iteratively (a loaded file is at most 100 levels deep)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


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
        envoy = load_yaml(read_bounded(envoy_path), str(envoy_path))
    except ConfigError as exc:
        return [f"cannot read Envoy config: {exc}"]
    if not isinstance(envoy, dict):
        return [f"{envoy_path} is not an Envoy bootstrap (a YAML object)"]
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
    except Exception as exc:  # a builder bug: still one line, never a traceback
        return None, [f"{config_path}: building the config failed: {one_line(repr(exc))}"]
    problems = check_envoy(snapshot, envoy_path) if envoy_path is not None else []
    return snapshot, problems
