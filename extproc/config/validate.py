"""``routeiq config validate``: is a RoutingConfig usable, and does the proxy agree with it?

Builds the snapshot exactly as the server would (YAML validated, policies compiled and
test-evaluated, models verified by hash and loaded), then, given a proxy config,
checks that every backend's ``cluster`` value reaches a destination: either a route
that matches the route header exactly and names an existing cluster, or (no such
routes) a cluster of that name. The proxy config is an Envoy bootstrap, or a file of
Kubernetes resources (several YAML documents: Istio ``VirtualService`` header matches
``{header: {exact: value}}``, Gateway API ``HTTPRoute`` header matches ``{name, value,
type: Exact}``); the other documents of such a file (EnvoyFilter, Gateway...) are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

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


def _istio_routes(vs: dict[str, Any], header: str) -> dict[str, str]:
    """Route-header value -> destination host of an Istio VirtualService."""
    routes: dict[str, str] = {}
    for http in (vs.get("spec") or {}).get("http") or []:
        hosts = [((r.get("destination") or {}).get("host")) for r in http.get("route") or [] if r]
        for match in http.get("match") or []:
            exact = (((match or {}).get("headers") or {}).get(header) or {}).get("exact")
            if exact and hosts and hosts[0]:
                routes[exact] = hosts[0]
    return routes


def _gateway_api_routes(route: dict[str, Any], header: str) -> dict[str, str]:
    """Route-header value -> first backendRef name of a Gateway API HTTPRoute."""
    routes: dict[str, str] = {}
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = [r.get("name") for r in rule.get("backendRefs") or [] if r]
        for match in rule.get("matches") or []:
            for h in (match or {}).get("headers") or []:
                exact = h.get("type", "Exact") == "Exact" and h.get("name") == header
                if exact and h.get("value") and refs and refs[0]:
                    routes[h["value"]] = refs[0]
    return routes


def _documents(path: Path) -> list[Any]:
    """Every YAML document of ``path``: an Envoy bootstrap is one, a file of Kubernetes
    resources several. ``load_yaml`` bounds the whole stream before refusing a second
    document, so reading them all after that refusal is just as bounded."""
    text = read_bounded(path)
    try:
        return [load_yaml(text, str(path))]
    except ConfigError as exc:
        if "expected a single document" not in str(exc):
            raise
    return [d for d in yaml.safe_load_all(text) if d is not None]


def proxy_routes(docs: list[Any], header: str) -> tuple[set[str], dict[str, str]] | None:
    """Destinations and route-header value -> destination, from an Envoy bootstrap or
    Istio/Gateway API resources; None when no document is any of these."""
    clusters: set[str] = set()
    routes: dict[str, str] = {}
    known = False
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        kind = doc.get("kind")
        if kind == "VirtualService":
            found = _istio_routes(doc, header)
        elif kind == "HTTPRoute":
            found = _gateway_api_routes(doc, header)
        elif "static_resources" in doc or kind is None:
            envoy_clusters, found = envoy_routes(doc, header)
            clusters |= envoy_clusters
        else:
            continue
        known = True
        routes.update(found)
        clusters |= set(found.values()) if kind is not None else set()
    return (clusters, routes) if known else None


def check_envoy(snapshot: Snapshot, envoy_path: Path) -> list[str]:
    """Problems with how ``envoy_path`` routes this config's backends (empty: none)."""
    try:
        docs = _documents(envoy_path)
    except ConfigError as exc:
        return [f"cannot read Envoy config: {exc}"]
    except yaml.YAMLError as exc:
        return [f"cannot read Envoy config: {envoy_path}: {one_line(str(exc))}"]
    header = snapshot.spec.route_header
    found = proxy_routes(docs, header)
    if found is None:
        return [
            f"{envoy_path} is not an Envoy bootstrap, an Istio VirtualService or a Gateway "
            "API HTTPRoute"
        ]
    clusters, routes = found
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
