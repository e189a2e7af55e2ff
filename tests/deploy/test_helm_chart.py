"""The Helm chart, rendered by the real Helm engine (helm-python-sdk binds Helm's Go SDK)
with default and non-default values, and the objects validated against the Kubernetes
OpenAPI schemas (kubernetes-validate, strict: unknown fields fail)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from extproc.config.schema import RoutingConfig
from tests.deploy.harness import CHART, EXAMPLES, REPO

K8S_VERSION = "1.30.0"  # the chart's kubeVersion floor
NAMESPACE = "routeiq"


def render(values: dict[str, Any] | None = None, name: str = "routeiq") -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values, name=name, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml"):
            docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (c,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return c


def env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


NON_DEFAULT: dict[str, Any] = {
    "fullnameOverride": "llm-router",
    "image": {"repository": "registry.example.com/routeiq", "tag": "1.2.3"},
    "workers": 4,
    "resources": {"requests": {"cpu": "4", "memory": "2Gi"}, "limits": {"memory": "3Gi"}},
    "autoscaling": {"enabled": False},
    "replicaCount": 3,
    "podDisruptionBudget": {"maxUnavailable": None, "minAvailable": 2},
    "state": {
        "backend": "redis",
        "failureMode": "closed",
        "redis": {"existingSecret": "llm-redis", "secretKey": "redis-url"},
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
    "admin": {"token": {"existingSecret": "llm-admin", "secretKey": "admin-token"}},
    "service": {"headless": True},
    "networkPolicy": {
        "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}]}]
    },
    "models": {"volume": {"persistentVolumeClaim": {"claimName": "models", "readOnly": True}}},
    "config": {
        "rollOnChange": True,
        "bundledPolicies": True,
        "routingConfigYaml": (EXAMPLES / "per-team-budgets.yaml").read_text(),
        "policies": {"data/extra.yaml": "routeiq_data: {}\n"},
    },
    "settings": {"otel": {"exporter": "otlp", "endpoint": "http://otel:4317"}},
    "extraEnv": [{"name": "ROUTEIQ_REDIS_TIMEOUT_MS", "value": "80"}],
    "topologySpreadConstraints": [],
    "preStopSleepSeconds": 0,
}


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def custom_docs() -> list[dict[str, Any]]:
    return render(NON_DEFAULT)


def test_helm_lint_strict_has_no_errors() -> None:
    result = helm.lint(str(CHART), strict=True, namespace=NAMESPACE)
    assert result["errors"] == []
    # Only INFO (severity 1) findings, like "icon is recommended".
    assert all(m["severity"] <= 1 for m in result["messages"]), result["messages"]


@pytest.mark.parametrize("which", ["default", "custom"])
def test_every_rendered_object_validates_against_its_schema(
    which: str, default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    docs = default_docs if which == "default" else custom_docs
    checked = 0
    for doc in docs:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            continue  # a CRD: checked field by field below
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        assert doc["metadata"]["namespace"] == NAMESPACE
        checked += 1
    assert checked >= 7


def test_default_render_has_the_expected_objects(default_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )


def test_deployment_runs_routeiq_serve_non_root_with_grpc_probes(
    default_docs: list[dict[str, Any]],
) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    c = container(default_docs)
    pod = one(default_docs, "Deployment")["spec"]["template"]["spec"]
    assert c["args"] == ["serve"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"grpc": 50051, "admin": 9180}
    for probe, service in [
        ("startupProbe", "liveness"),
        ("livenessProbe", "liveness"),
        ("readinessProbe", "readiness"),
    ]:
        assert c[probe]["grpc"] == {"port": 50051, "service": service}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    e = env(default_docs)
    assert e["ROUTEIQ_GRPC_HOST"] == "0.0.0.0" and e["ROUTEIQ_ADMIN_HOST"] == "0.0.0.0"
    assert e["ROUTEIQ_WORKERS"] == str(values["workers"])
    assert e["ROUTEIQ_CONFIG_PATH"] == "/etc/routeiq/routeiq.yaml"
    assert "ROUTEIQ_REDIS_URL" not in e
    # SIGTERM drain fits in the pod's grace period, after the preStop pause.
    assert pod["terminationGracePeriodSeconds"] >= (
        c["lifecycle"]["preStop"]["sleep"]["seconds"] + float(e["ROUTEIQ_GRACE_PERIOD_S"])
    )
    # The HPA owns the replica count.
    assert "replicas" not in one(default_docs, "Deployment")["spec"]


def test_every_env_setting_is_a_real_routeiq_setting(
    default_docs: list[dict[str, Any]], custom_docs: list[dict[str, Any]]
) -> None:
    from extproc.config.settings import Settings

    known = {f"ROUTEIQ_{name.upper()}" for name in Settings.model_fields}
    for docs in (default_docs, custom_docs):
        assert set(env(docs)) <= known, set(env(docs)) - known


def test_config_is_a_directory_mount_that_receives_updates(
    default_docs: list[dict[str, Any]],
) -> None:
    pod = one(default_docs, "Deployment")["spec"]["template"]["spec"]
    (mount,) = [m for m in container(default_docs)["volumeMounts"] if m["name"] == "config"]
    assert mount == {"name": "config", "mountPath": "/etc/routeiq", "readOnly": True}
    assert all("subPath" not in m for m in container(default_docs)["volumeMounts"])
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert volume["projected"]["sources"] == [{"configMap": {"name": "routeiq-config"}}]
    # No checksum annotation by default: a config change hot-reloads, pods are not rolled.
    assert "annotations" not in one(default_docs, "Deployment")["spec"]["template"]["metadata"]


def test_default_routing_config_in_the_configmap_validates(
    default_docs: list[dict[str, Any]],
) -> None:
    cm = one(default_docs, "ConfigMap")
    config = RoutingConfig.model_validate(yaml.safe_load(cm["data"]["routeiq.yaml"]))
    assert config.spec.route_header == "x-routeiq-cluster"


def test_service_exposes_grpc_with_app_protocol(default_docs: list[dict[str, Any]]) -> None:
    svc = one(default_docs, "Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc" and ports["grpc"]["port"] == 50051
    assert ports["admin"]["port"] == 9180
    selector = one(default_docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"] == selector
    assert one(default_docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector


def test_network_policy_admits_gateways_on_grpc_and_prometheus_on_admin(
    default_docs: list[dict[str, Any]],
) -> None:
    np = one(default_docs, "NetworkPolicy")["spec"]
    assert np["policyTypes"] == ["Ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in np["ingress"]}
    assert set(by_port) == {"grpc", "admin"}
    grpc_namespaces = {
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in by_port["grpc"]
    }
    assert grpc_namespaces == {"istio-system", "envoy-gateway-system"}
    assert by_port["admin"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_non_default_values_take_effect(custom_docs: list[dict[str, Any]]) -> None:
    kinds = sorted(d["kind"] for d in custom_docs)
    assert "HorizontalPodAutoscaler" not in kinds
    assert kinds.count("Service") == 2 and kinds.count("ConfigMap") == 2
    assert "ServiceMonitor" in kinds and "Secret" not in kinds  # existingSecret: none made
    deploy = one(custom_docs, "Deployment")
    assert deploy["metadata"]["name"] == "llm-router"
    assert deploy["spec"]["replicas"] == 3
    c = container(custom_docs)
    assert c["image"] == "registry.example.com/routeiq:1.2.3"
    assert "lifecycle" not in c
    e = env(custom_docs)
    assert e["ROUTEIQ_WORKERS"] == "4"
    assert e["ROUTEIQ_STATE_BACKEND"] == "redis"
    assert e["ROUTEIQ_STATE_FAILURE_MODE"] == "closed"
    assert e["ROUTEIQ_REDIS_URL"] == {"secretKeyRef": {"name": "llm-redis", "key": "redis-url"}}
    assert e["ROUTEIQ_OTLP_ENDPOINT"] == "http://otel:4317"
    assert e["ROUTEIQ_REDIS_TIMEOUT_MS"] == "80"
    assert e["ROUTEIQ_ADMIN_TOKEN"] == {"secretKeyRef": {"name": "llm-admin", "key": "admin-token"}}
    pod = deploy["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in pod
    assert {"name": "models", "mountPath": "/app/models", "readOnly": True} in c["volumeMounts"]
    annotations = deploy["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    assert one(custom_docs, "PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": deploy["spec"]["selector"],
    }
    assert one(custom_docs, "NetworkPolicy")["spec"]["policyTypes"] == ["Ingress", "Egress"]
    headless = [
        d for d in custom_docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"
    ]
    assert [h["metadata"]["name"] for h in headless] == ["llm-router-headless"]


def test_service_monitor_scrapes_admin_metrics(custom_docs: list[dict[str, Any]]) -> None:
    sm = one(custom_docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus"
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "admin" and endpoint["path"] == "/metrics"
    svc = [d for d in custom_docs if d["kind"] == "Service" and "clusterIP" not in d["spec"]]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc[0]["metadata"]["labels"].items()


def test_mounted_files_resolve_like_in_the_pod(
    custom_docs: list[dict[str, Any]], tmp_path: Path
) -> None:
    """Lay the projected volume out as kubelet would and load the RoutingConfig from it:
    every policy path it references must exist, with the bundled files' content."""
    pod = one(custom_docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    maps = {d["metadata"]["name"]: d["data"] for d in custom_docs if d["kind"] == "ConfigMap"}
    for source in volume["projected"]["sources"]:
        data = maps[source["configMap"]["name"]]
        items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
        assert {i["key"] for i in items} == set(data)
        for item in items:
            target = tmp_path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])
    config = RoutingConfig.model_validate(yaml.safe_load((tmp_path / "routeiq.yaml").read_text()))
    for rel in (*config.spec.policy.modules, *config.spec.policy.data):
        assert (tmp_path / rel).exists(), rel
    assert (tmp_path / "policies/data/extra.yaml").read_text() == "routeiq_data: {}\n"
    for rego in (REPO / "policies").rglob("*"):
        if rego.is_file():
            rel = rego.relative_to(REPO)
            assert (tmp_path / rel).read_text() == rego.read_text(), rel


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"state": {"backend": "redis"}}, "state.redis.existingSecret"),
        ({"state": {"backend": "etcd"}}, "memory or redis"),
        ({"podDisruptionBudget": {"minAvailable": 1}}, "only one of"),
        ({"terminationGracePeriodSeconds": 10}, "terminationGracePeriodSeconds"),
    ],
)
def test_bad_values_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def test_redis_url_value_creates_a_secret() -> None:
    docs = render({"state": {"backend": "redis", "redis": {"url": "redis://r:6379/0"}}})
    secret = one(docs, "Secret")
    assert secret["stringData"] == {"url": "redis://r:6379/0"}
    assert env(docs)["ROUTEIQ_REDIS_URL"] == {
        "secretKeyRef": {"name": secret["metadata"]["name"], "key": "url"}
    }


def test_admin_token_and_bind_stay_consistent(default_docs: list[dict[str, Any]]) -> None:
    """The admin port listens on 0.0.0.0 (Prometheus scrapes it): explain and config then
    need ROUTEIQ_ADMIN_TOKEN, which only ever comes from a Secret. Without one the chart
    sets none, so those routes answer 403 while the gRPC probes and /metrics work."""
    e = env(default_docs)
    assert e["ROUTEIQ_ADMIN_HOST"] == "0.0.0.0"
    assert "ROUTEIQ_ADMIN_TOKEN" not in e
    c = container(default_docs)
    assert {p["grpc"]["port"] for p in (c["livenessProbe"], c["readinessProbe"])} == {50051}
    with helm.Chart.load(str(CHART)) as chart:
        notes = chart.render(None, name="routeiq", namespace=NAMESPACE, is_install=True)
    text = next(v for k, v in notes.items() if k.endswith("NOTES.txt"))
    assert "403" in text and "admin.token.existingSecret" in text
