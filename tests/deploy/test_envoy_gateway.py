"""Envoy Gateway manifests: well-formed, wired to the chart and the example, and their
Envoy equivalents accepted (and run) by the real Envoy.

Envoy Gateway translates these resources into Envoy config itself; the test writes the
same translation by hand (EnvoyExtensionPolicy -> ext_proc filter, ClientTrafficPolicy
earlyRequestHeaders -> early_header_mutation_extensions, path -> normalize_path (always
on in Envoy Gateway), merge_slashes and path_with_escaped_slashes_action, bufferLimit ->
per_connection_buffer_limit_bytes, HTTPRoute rules -> routes with their
RequestHeaderModifier removals), so a field that Envoy would refuse, or a header value
without a route, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import headers as routeiq_headers
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
    static_cluster,
    upstream,
    upstreams,
)

EG = DEPLOY / "envoy-gateway"
HEADER = "x-routeiq-cluster"
ESCAPED_SLASHES = {
    "KeepUnchanged": "KEEP_UNCHANGED",
    "RejectRequest": "REJECT_REQUEST",
    "UnescapeRedirect": "UNESCAPE_AND_REDIRECT",
    "UnescapeForward": "UNESCAPE_AND_FORWARD",
}
EARLY_MUTATION_TYPE = (
    "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3."
    "HeaderMutation"
)


def _docs() -> list[dict[str, Any]]:
    return [d for f in sorted(EG.glob("*.yaml")) for d in load_docs(f)]


def _one(kind: str) -> dict[str, Any]:
    (doc,) = by_kind(_docs(), kind)
    return doc


def _quantity(value: str) -> int:
    m = re.fullmatch(r"([0-9]+)(Ki|Mi|Gi)?", value)
    assert m, value
    return int(m[1]) * {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}[m[2]]


def _duration(value: str) -> str:
    """A Gateway API duration ("1s", "200ms") as a protobuf JSON duration."""
    m = re.fullmatch(r"([0-9]+)(ms|s)", value)
    assert m, value
    return f"{int(m[1]) / (1000 if m[2] == 'ms' else 1)}s"


def test_every_manifest_parses_with_the_fields_its_api_needs() -> None:
    docs = _docs()
    assert {
        "Gateway",
        "ClientTrafficPolicy",
        "EnvoyExtensionPolicy",
        "ReferenceGrant",
        "HTTPRoute",
        "Backend",
        "BackendTLSPolicy",
    } <= {d["kind"] for d in docs}
    for d in docs:
        assert d["metadata"]["name"] and d["metadata"]["namespace"], d["kind"]
        group = d["apiVersion"].split("/")[0]
        assert group in {"gateway.networking.k8s.io", "gateway.envoyproxy.io"}, d["kind"]
    gw = _one("Gateway")
    assert gw["spec"]["gatewayClassName"] and gw["spec"]["listeners"]
    for policy in (_one("ClientTrafficPolicy"), _one("EnvoyExtensionPolicy")):
        (ref,) = policy["spec"]["targetRefs"]
        assert ref == {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": gw["metadata"]["name"],
        }
    route = _one("HTTPRoute")
    assert route["spec"]["parentRefs"] == [{"name": gw["metadata"]["name"]}]
    for rule in route["spec"]["rules"]:
        assert rule["backendRefs"] and rule["matches"]


def test_ext_proc_policy_points_at_the_chart_service_with_the_right_modes() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    (ext,) = _one("EnvoyExtensionPolicy")["spec"]["extProc"]
    (ref,) = ext["backendRefs"]
    assert ref == {
        "group": "",
        "kind": "Service",
        "name": "routeiq",
        "namespace": "routeiq",
        "port": values["grpc"]["port"],
    }
    assert ext["processingMode"] == {"request": {"body": "Buffered"}, "allowModeOverride": True}
    assert ext["failOpen"] is False
    # Cross-namespace backendRef: the ReferenceGrant in the Service's namespace allows it.
    grant = _one("ReferenceGrant")["spec"]
    policy_ns = _one("EnvoyExtensionPolicy")["metadata"]["namespace"]
    assert {
        "group": "gateway.envoyproxy.io",
        "kind": "EnvoyExtensionPolicy",
        "namespace": policy_ns,
    } in grant["from"]
    assert {"group": "", "kind": "Service", "name": "routeiq"} in grant["to"]
    assert _one("ReferenceGrant")["metadata"]["namespace"] == ref["namespace"]


def test_client_route_header_is_removed_before_routing() -> None:
    headers = _one("ClientTrafficPolicy")["spec"]["headers"]["earlyRequestHeaders"]
    assert HEADER in headers["remove"]
    example = yaml.safe_load((EXAMPLES / "vllm-small-provider-large.yaml").read_text())
    assert example["spec"]["routeHeader"] in headers["remove"]


def test_every_header_routeiq_sets_is_removed_early_and_the_hint_on_forward() -> None:
    """Exact names only (Gateway API): the list must cover every x-routeiq-* name RouteIQ
    sets, the headers the shipped policies set, and the identity headers; the client
    hint x-routeiq-profile must survive until RouteIQ read it, then every rule drops it."""
    removed = set(_one("ClientTrafficPolicy")["spec"]["headers"]["earlyRequestHeaders"]["remove"])
    names = {
        v
        for k, v in vars(routeiq_headers).items()
        if k.isupper() and isinstance(v, str) and v.startswith("x-routeiq-") and v != "x-routeiq-"
    }
    set_by_policies = {"x-routeiq-confidential", "x-routeiq-policy-dry-run"}
    expected = (names | set_by_policies | {HEADER, "x-team", "x-user-id"}) - {
        routeiq_headers.PROFILE
    }
    assert expected <= removed, sorted(expected - removed)
    assert routeiq_headers.PROFILE not in removed
    for rule in _one("HTTPRoute")["spec"]["rules"]:
        mods = [f for f in rule["filters"] if f["type"] == "RequestHeaderModifier"]
        assert [m["requestHeaderModifier"]["remove"] for m in mods] == [[routeiq_headers.PROFILE]]
    path = _one("ClientTrafficPolicy")["spec"]["path"]
    assert path == {"escapedSlashesAction": "RejectRequest", "disableMergeSlashes": False}


def test_routes_cover_every_backend_of_the_example() -> None:
    config = RoutingConfig.model_validate(
        yaml.safe_load((EXAMPLES / "vllm-small-provider-large.yaml").read_text())
    )
    routed = set()
    rules = _one("HTTPRoute")["spec"]["rules"]
    for rule in rules:
        for m in rule["matches"]:
            for h in m.get("headers", []):
                assert h["type"] == "Exact" and h["name"] == config.spec.route_header
                routed.add(h["value"])
    assert routed == {b.cluster for b in config.spec.backends}
    assert not any("headers" in m for m in rules[-1]["matches"])  # a default rule
    backend = _one("Backend")
    tls = _one("BackendTLSPolicy")["spec"]
    assert tls["targetRefs"][0]["name"] == backend["metadata"]["name"]
    assert tls["validation"]["hostname"] == backend["spec"]["endpoints"][0]["fqdn"]["hostname"]


def _translate(
    *,
    ports: dict[str, int],
    listener: int,
    admin: int,
    ext_proc_port: int,
    fail_open: bool | None = None,
) -> dict[str, Any]:
    """What Envoy Gateway would generate for these resources, as a static bootstrap."""
    (ext,) = _one("EnvoyExtensionPolicy")["spec"]["extProc"]
    mode = ext["processingMode"]
    body_modes = {
        "Buffered": "BUFFERED",
        "Streamed": "STREAMED",
        "BufferedPartial": "BUFFERED_PARTIAL",
    }
    ext_cluster = "routeiq-ext-proc"
    ext_proc = {
        "name": "envoy.filters.http.ext_proc",
        "typed_config": {
            "@type": EXT_PROC_TYPE,
            "grpc_service": {"envoy_grpc": {"cluster_name": ext_cluster}},
            "failure_mode_allow": ext["failOpen"] if fail_open is None else fail_open,
            "message_timeout": _duration(ext["messageTimeout"]),
            "allow_mode_override": mode["allowModeOverride"],
            "processing_mode": {
                "request_header_mode": "SEND" if "request" in mode else "SKIP",
                "request_body_mode": body_modes[mode["request"]["body"]],
                "response_header_mode": "SEND" if "response" in mode else "SKIP",
            },
        },
    }
    ctp = _one("ClientTrafficPolicy")["spec"]
    path_settings = ctp.get("path", {})
    early = [
        {
            "name": "envoy.http.early_header_mutation.header_mutation",
            "typed_config": {
                "@type": EARLY_MUTATION_TYPE,
                "mutations": [
                    {"remove": h} for h in ctp["headers"]["earlyRequestHeaders"]["remove"]
                ],
            },
        }
    ]
    routes = []
    clusters = {}
    for rule in _one("HTTPRoute")["spec"]["rules"]:
        (ref,) = rule["backendRefs"]
        cluster = ref["name"]
        clusters[cluster] = ports[cluster]
        action: dict[str, Any] = {"cluster": cluster, "timeout": rule["timeouts"]["request"]}
        removed: list[str] = []
        for f in rule.get("filters", []):
            if f["type"] == "URLRewrite":
                action["host_rewrite_literal"] = f["urlRewrite"]["hostname"]
            if f["type"] == "RequestHeaderModifier":
                removed += f["requestHeaderModifier"].get("remove", [])
        for m in rule["matches"]:
            em: dict[str, Any] = {"prefix": m["path"]["value"]}
            if m.get("headers"):
                em["headers"] = [
                    {"name": h["name"], "string_match": {"exact": h["value"]}} for h in m["headers"]
                ]
            route: dict[str, Any] = {"match": em, "route": action}
            if removed:
                route["request_headers_to_remove"] = removed
            routes.append(route)
    # Gateway API precedence: rules with more header matches first.
    routes.sort(key=lambda r: -len(r["match"].get("headers", [])))
    return bootstrap(
        http_filters=[ext_proc, ROUTER],
        routes=routes,
        clusters=[static_cluster(n, p) for n, p in clusters.items()]
        + [static_cluster(ext_cluster, ext_proc_port, http2=True)],
        listener_port=listener,
        admin_port=admin,
        hcm_extra={
            "early_header_mutation_extensions": early,
            "normalize_path": True,  # Envoy Gateway sets it on every listener
            "merge_slashes": not path_settings.get("disableMergeSlashes", False),
            "path_with_escaped_slashes_action": ESCAPED_SLASHES[
                path_settings.get("escapedSlashesAction", "UnescapeRedirect")
            ],
        },
        listener_extra={
            "per_connection_buffer_limit_bytes": _quantity(ctp["connection"]["bufferLimit"])
        },
    )


def test_envoy_accepts_the_gateway_equivalents(tmp_path: Path) -> None:
    config = _translate(
        ports={"vllm-small": 1, "provider-large": 2},
        listener=free_port(),
        admin=free_port(),
        ext_proc_port=3,
    )
    result = envoy_validate(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("header_value", ["provider_large", "vllm_small"])
def test_fail_open_cannot_be_steered_by_a_client_header(header_value: str, tmp_path: Path) -> None:
    with upstreams("vllm-small", "provider-large") as ports:
        listener, admin = free_port(), free_port()
        config = _translate(
            ports=ports, listener=listener, admin=admin, ext_proc_port=free_port(), fail_open=True
        )
        with running_envoy(config, tmp_path):
            status, body = post_chat(listener, {HEADER: header_value})
            assert (status, body) == (200, upstream("vllm-small"))
            spoofed = {
                HEADER: header_value,
                "x-routeiq-category": "spoof",
                "x-routeiq-confidential": "false",
                "x-routeiq-backend": "spoof",
                "x-routeiq-profile": "eco",
                "x-team": "admins",
            }
            status, body = post_chat(listener, spoofed)
            assert (status, body) == (200, upstream("vllm-small"))
            status, body = post_chat(listener, {}, "/v1//x/../%63hat/completions")
            assert (status, body) == (200, upstream("vllm-small"))
            status, _ = post_chat(listener, {}, "/v1/chat%2Fcompletions")
            assert status == 400
