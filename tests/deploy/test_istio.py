"""Istio manifests: well-formed, wired to the chart and the example, and accepted by Envoy.

The Envoy pieces (the connection-manager patch, the HTTP filters the EnvoyFilter patches
insert, the listener patch, and the VirtualService's header routes written as Envoy
routes) are wrapped in a bootstrap and checked by the real Envoy (`--mode validate`),
then run: with RouteIQ unreachable and fail-open, no client-sent routing or identity
header picks the route or reaches the upstream, paths arrive normalised; fail-closed
answers OpenAI-format 503 routing_unavailable.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config.schema import RoutingConfig
from extproc.demo.processes import free_port
from tests.deploy.harness import (
    CHART,
    DEPLOY,
    EXAMPLES,
    EXT_PROC_TYPE,
    ROUTER,
    bootstrap,
    by_kind,
    envoy_validate,
    load_docs,
    post_chat,
    running_envoy,
    standalone_local_replies,
    static_cluster,
    upstream,
    upstreams,
)

ISTIO = DEPLOY / "istio"
ENVOY_FILTERS = ["envoyfilter-gateway.yaml", "envoyfilter-sidecar.yaml"]
PATCH_OPERATIONS = {
    "MERGE",
    "ADD",
    "REMOVE",
    "INSERT_BEFORE",
    "INSERT_AFTER",
    "INSERT_FIRST",
    "REPLACE",
}


def _all_docs() -> list[dict[str, Any]]:
    return [d for f in sorted(ISTIO.glob("*.yaml")) for d in load_docs(f)]


def _virtual_service(name: str) -> dict[str, Any]:
    (vs,) = [d for d in by_kind(_all_docs(), "VirtualService") if d["metadata"]["name"] == name]
    return vs


def _patch(doc: dict[str, Any], name: str) -> dict[str, Any]:
    for p in doc["spec"]["configPatches"]:
        if p["patch"].get("value", {}).get("name") == name:
            return p
    raise AssertionError(f"{doc['metadata']['name']} has no patch inserting {name}")


def _hcm_patch(doc: dict[str, Any]) -> dict[str, Any]:
    (patch,) = [p for p in doc["spec"]["configPatches"] if p["applyTo"] == "NETWORK_FILTER"]
    return patch


def _route_header_routes(vs: dict[str, Any], header: str) -> dict[str, str]:
    """exact header value -> destination host, from a VirtualService's http routes."""
    out = {}
    for route in vs["spec"]["http"]:
        for m in route.get("match", []):
            if header in m.get("headers", {}):
                out[m["headers"][header]["exact"]] = route["route"][0]["destination"]["host"]
    return out


def _outbound(host: str, port: int) -> str:
    return f"outbound|{port}||{host}"


def _envoy_routes(vs: dict[str, Any], header: str) -> list[dict[str, Any]]:
    """The VirtualService's http routes as Envoy routes (Istio's cluster naming)."""
    routes = []
    for route in vs["spec"]["http"]:
        dest = route["route"][0]["destination"]
        action: dict[str, Any] = {
            "cluster": _outbound(dest["host"], dest["port"]["number"]),
            "timeout": route.get("timeout", "15s"),
        }
        if "rewrite" in route:
            action["host_rewrite_literal"] = route["rewrite"]["authority"]
        removed = route.get("headers", {}).get("request", {}).get("remove", [])
        matches = route.get("match") or [{}]
        for m in matches:
            em: dict[str, Any] = {"prefix": m.get("uri", {}).get("prefix", "/")}
            if header in m.get("headers", {}):
                em["headers"] = [
                    {"name": header, "string_match": {"exact": m["headers"][header]["exact"]}}
                ]
            envoy_route: dict[str, Any] = {"match": em, "route": action}
            if removed:
                envoy_route["request_headers_to_remove"] = removed
            routes.append(envoy_route)
    return routes


def test_every_manifest_parses_with_identity_fields() -> None:
    docs = _all_docs()
    kinds = {d["kind"] for d in docs}
    assert {"EnvoyFilter", "Gateway", "VirtualService", "ServiceEntry", "DestinationRule"} <= kinds
    for d in docs:
        assert d["apiVersion"].startswith("networking.istio.io/"), d["kind"]
        assert d["metadata"]["name"] and d["metadata"]["namespace"], d["kind"]
        assert isinstance(d["spec"], dict) and d["spec"], d["metadata"]["name"]


@pytest.mark.parametrize("filename", ENVOY_FILTERS)
def test_envoy_filter_patches_are_well_formed(filename: str) -> None:
    (ef,) = load_docs(ISTIO / filename)
    assert ef["apiVersion"] == "networking.istio.io/v1alpha3"
    assert ef["spec"]["workloadSelector"]["labels"]
    for p in ef["spec"]["configPatches"]:
        assert p["applyTo"] in {"HTTP_FILTER", "LISTENER", "NETWORK_FILTER"}
        assert p["match"]["context"] in {"GATEWAY", "SIDECAR_OUTBOUND"}
        assert p["patch"]["operation"] in PATCH_OPERATIONS
    strip, ext_proc = _patch(ef, "routeiq-strip"), _patch(ef, "envoy.filters.http.ext_proc")
    hcm = _hcm_patch(ef)
    assert hcm["patch"]["operation"] == "MERGE"
    settings = hcm["patch"]["value"]["typed_config"]
    assert settings["normalize_path"] is True and settings["merge_slashes"] is True
    assert settings["path_with_escaped_slashes_action"] == "REJECT_REQUEST"
    assert settings["local_reply_config"] == standalone_local_replies()
    # The strip filter runs first; ext_proc runs right before the router.
    assert strip["patch"]["operation"] == "INSERT_FIRST"
    assert ext_proc["patch"]["operation"] == "INSERT_BEFORE"
    hcm = ext_proc["match"]["listener"]["filterChain"]["filter"]
    assert hcm["subFilter"]["name"] == "envoy.filters.http.router"
    cfg = ext_proc["patch"]["value"]["typed_config"]
    assert cfg["@type"] == EXT_PROC_TYPE
    assert cfg["processing_mode"]["request_header_mode"] == "SEND"
    assert cfg["processing_mode"]["request_body_mode"] == "BUFFERED"
    assert cfg["processing_mode"]["response_header_mode"] == "SKIP"
    assert cfg["allow_mode_override"] is True
    assert cfg["failure_mode_allow"] is False  # the shipped choice: fail-closed
    assert cfg["message_timeout"] == "1s"


@pytest.mark.parametrize("filename", ENVOY_FILTERS)
def test_ext_proc_cluster_is_the_charts_grpc_service(filename: str) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (ef,) = load_docs(ISTIO / filename)
    cfg = _patch(ef, "envoy.filters.http.ext_proc")["patch"]["value"]["typed_config"]
    # Release "routeiq" in namespace "routeiq": the chart's fullname is "routeiq".
    expected = _outbound("routeiq.routeiq.svc.cluster.local", values["grpc"]["port"])
    assert cfg["grpc_service"]["envoy_grpc"]["cluster_name"] == expected


def test_sidecar_variant_runs_on_the_callers_outbound_listener() -> None:
    (ef,) = load_docs(ISTIO / "envoyfilter-sidecar.yaml")
    ports = {p["match"]["listener"]["portNumber"] for p in ef["spec"]["configPatches"]}
    vs = _virtual_service("llm-mesh")
    assert vs["spec"]["gateways"] == ["mesh"]
    default = vs["spec"]["http"][-1]["route"][0]["destination"]
    assert ports == {default["port"]["number"]}


def test_gateway_routes_cover_every_backend_of_the_example() -> None:
    config = RoutingConfig.model_validate(
        yaml.safe_load((EXAMPLES / "litellm-in-front-of-providers.yaml").read_text())
    )
    header = config.spec.route_header
    vs = _virtual_service("llm")
    routed = _route_header_routes(vs, header)
    assert {b.cluster for b in config.spec.backends} == set(routed)
    # The last route has no match: requests RouteIQ did not route land on LiteLLM.
    assert "match" not in vs["spec"]["http"][-1]
    provider_hosts = {h for d in by_kind(_all_docs(), "ServiceEntry") for h in d["spec"]["hosts"]}
    assert routed["provider_openai"] in provider_hosts


def _istio_envoy_config(
    filename: str,
    *,
    ports: dict[str, int],
    listener: int,
    admin: int,
    ext_proc_port: int,
    failure_mode_allow: bool | None = None,
    strip: bool = True,
) -> dict[str, Any]:
    """The EnvoyFilter's filters and listener patch, with the gateway VirtualService's
    routes, as a static bootstrap whose destination clusters point at local upstreams."""
    (ef,) = load_docs(ISTIO / filename)
    header = "x-routeiq-cluster"
    vs = _virtual_service("llm")
    strip_filter = copy.deepcopy(_patch(ef, "routeiq-strip")["patch"]["value"])
    ext_proc = copy.deepcopy(_patch(ef, "envoy.filters.http.ext_proc")["patch"]["value"])
    if failure_mode_allow is not None:
        ext_proc["typed_config"]["failure_mode_allow"] = failure_mode_allow
    filters = [strip_filter] if strip else []
    filters += [ext_proc, ROUTER]
    listener_extra: dict[str, Any] = {}
    for p in ef["spec"]["configPatches"]:
        if p["applyTo"] == "LISTENER":
            listener_extra.update(p["patch"]["value"])
    routes = _envoy_routes(vs, header)
    hosts = {r["route"]["cluster"] for r in routes}
    upstream_of = {  # destination cluster -> local upstream standing in for it
        _outbound("litellm.llm.svc.cluster.local", 4000): ports["litellm"],
        _outbound("api.openai.com", 80): ports["provider_openai"],
    }
    assert hosts == set(upstream_of)
    clusters = [static_cluster(name, port) for name, port in upstream_of.items()]
    ext_cluster = ext_proc["typed_config"]["grpc_service"]["envoy_grpc"]["cluster_name"]
    clusters.append(static_cluster(ext_cluster, ext_proc_port, http2=True))
    hcm_extra = copy.deepcopy(_hcm_patch(ef)["patch"]["value"]["typed_config"])
    del hcm_extra["@type"]
    return bootstrap(
        http_filters=filters,
        routes=routes,
        clusters=clusters,
        listener_port=listener,
        admin_port=admin,
        listener_extra=listener_extra,
        hcm_extra=hcm_extra,
    )


@pytest.mark.parametrize("filename", ENVOY_FILTERS)
def test_envoy_accepts_the_istio_pieces(filename: str, tmp_path: Path) -> None:
    config = _istio_envoy_config(
        filename,
        ports={"litellm": 1, "provider_openai": 2},
        listener=free_port(),
        admin=free_port(),
        ext_proc_port=3,
    )
    result = envoy_validate(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


SPOOFED = {
    "X-RouteIQ-Cluster": "provider_openai",
    "x-routeiq-category": "spoof",
    "x-routeiq-confidential": "false",
    "x-routeiq-anything": "1",
    "x-routeiq-profile": "eco",
    "x-team": "admins",
    "x-user-id": "root",
}


@pytest.mark.parametrize("filename", ENVOY_FILTERS)
def test_fail_open_routes_by_default_and_ignores_client_headers(
    filename: str, tmp_path: Path
) -> None:
    """RouteIQ down + failure_mode_allow: true. A client naming its own backend in
    x-routeiq-cluster still lands on the default route, and neither that header nor any
    other x-routeiq-*, x-team or x-user-id it sent reaches the upstream. Paths arrive
    normalised; escaped slashes are refused in OpenAI's format."""
    dead_ext_proc = free_port()  # nothing listens there
    with upstreams("litellm", "provider_openai") as ports:
        listener, admin = free_port(), free_port()
        config = _istio_envoy_config(
            filename,
            ports=ports,
            listener=listener,
            admin=admin,
            ext_proc_port=dead_ext_proc,
            failure_mode_allow=True,
        )
        with running_envoy(config, tmp_path):
            status, body = post_chat(listener, {"x-routeiq-cluster": "provider_openai"})
            assert (status, body) == (200, upstream("litellm"))
            status, body = post_chat(listener, SPOOFED)
            assert (status, body) == (200, upstream("litellm"))
            for odd in ("/v1/%63hat//completions", "/v1/./x/../chat/completions"):
                status, body = post_chat(listener, {}, odd)
                assert (status, body) == (200, upstream("litellm")), odd
            status, body = post_chat(listener, {}, "/v1/chat%2Fcompletions")
            assert status == 400 and body is not None
            assert body["error"]["code"] == "invalid_path"


def test_without_the_strip_filter_fail_open_is_spoofable(tmp_path: Path) -> None:
    """The control for the test above: the same set-up minus routeiq-strip honours the
    client's header, so the strip filter is what closes the hole."""
    with upstreams("litellm", "provider_openai") as ports:
        listener, admin = free_port(), free_port()
        config = _istio_envoy_config(
            "envoyfilter-gateway.yaml",
            ports=ports,
            listener=listener,
            admin=admin,
            ext_proc_port=free_port(),
            failure_mode_allow=True,
            strip=False,
        )
        with running_envoy(config, tmp_path):
            status, body = post_chat(listener, {"x-routeiq-cluster": "provider_openai"})
            assert status == 200 and body is not None
            assert body["upstream"] == "provider_openai"
            assert body["route_header"] == "provider_openai"


def test_fail_closed_as_shipped_reaches_no_backend_and_says_why(tmp_path: Path) -> None:
    with upstreams("litellm", "provider_openai") as ports:
        listener, admin = free_port(), free_port()
        config = _istio_envoy_config(
            "envoyfilter-gateway.yaml",
            ports=ports,
            listener=listener,
            admin=admin,
            ext_proc_port=free_port(),
        )
        with running_envoy(config, tmp_path):
            status, body = post_chat(listener, SPOOFED)
            assert status == 503 and body is not None
            assert body["error"]["code"] == "routing_unavailable"
            assert body["error"]["type"] == "service_unavailable"
            assert "ext_proc" not in str(body)
