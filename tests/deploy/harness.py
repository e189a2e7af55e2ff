"""Helpers for the deploy tests: manifests, the chart, and a real Envoy on loopback."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from extproc.demo.processes import envoy_binary

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHART = DEPLOY / "helm" / "routeiq"
EXAMPLES = DEPLOY / "examples"

H2_OPTIONS_TYPE = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
EXT_PROC_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor"
HCM_TYPE = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)
ROUTER = {
    "name": "envoy.filters.http.router",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
}


def standalone_local_replies() -> dict[str, Any]:
    """The local_reply_config of the shipped standalone Envoy config: every product's
    manifests must answer Envoy's own errors the same way."""
    doc = yaml.safe_load((REPO / "envoy" / "routeiq-fail-closed.yaml").read_text())
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    replies: dict[str, Any] = hcm["typed_config"]["local_reply_config"]
    return replies


def load_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a manifest file."""
    with path.open() as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


_base_ids = iter(range(os.getpid() % 5000 * 10 + 20000, 10**6))


def next_base_id() -> int:
    """A --base-id unique to this process and call (shared-memory names must not clash)."""
    return next(_base_ids)


def static_cluster(name: str, port: int, *, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "connect_timeout": "0.25s",
        "type": "STATIC",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    if http2:
        cluster["typed_extension_protocol_options"] = {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": H2_OPTIONS_TYPE,
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def bootstrap(
    *,
    http_filters: list[dict[str, Any]],
    routes: list[dict[str, Any]],
    clusters: list[dict[str, Any]],
    listener_port: int,
    admin_port: int,
    hcm_extra: dict[str, Any] | None = None,
    listener_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A static Envoy bootstrap: one HTTP listener on loopback with the given pieces."""
    hcm: dict[str, Any] = {
        "@type": HCM_TYPE,
        "stat_prefix": "ingress",
        "http_filters": http_filters,
        "route_config": {
            "name": "routes",
            "virtual_hosts": [{"name": "llm", "domains": ["*"], "routes": routes}],
        },
        **(hcm_extra or {}),
    }
    listener: dict[str, Any] = {
        "name": "ingress",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": listener_port}},
        "filter_chains": [
            {
                "filters": [
                    {"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}
                ]
            }
        ],
        **(listener_extra or {}),
    }
    return {
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {"listeners": [listener], "clusters": clusters},
    }


def envoy_validate(config: dict[str, Any], workdir: Path) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate` on a bootstrap: parses every typed config, checks references."""
    path = workdir / f"validate-{next_base_id()}.json"
    path.write_text(json.dumps(config, indent=1))
    return subprocess.run(
        [
            str(envoy_binary()),
            "--mode",
            "validate",
            "-c",
            str(path),
            "--base-id",
            str(next_base_id()),
            "-l",
            "error",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# Request headers an upstream must never receive from a client (see docs/envoy.md).
WATCHED = ("x-routeiq-", "x-team", "x-user-id")


class _Recorder(BaseHTTPRequestHandler):
    """An upstream that answers with its own name, the route header and path it received,
    and every received header a client must not be able to plant (``WATCHED``)."""

    server: _NamedServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        watched = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith(WATCHED)}
        watched.pop("x-routeiq-cluster", None)
        body = json.dumps(
            {
                "upstream": self.server.name,
                "route_header": self.headers.get("x-routeiq-cluster"),
                "path": self.path,
                "planted": watched,
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _NamedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.name = name


@contextmanager
def upstreams(*names: str) -> Iterator[dict[str, int]]:
    """Named HTTP upstreams on loopback; yields name -> port."""
    servers = [_NamedServer(n) for n in names]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    try:
        yield {s.name: s.server_address[1] for s in servers}
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


@contextmanager
def running_envoy(config: dict[str, Any], workdir: Path) -> Iterator[None]:
    """Run Envoy on a bootstrap until the block ends; waits for its admin /ready."""
    path = workdir / f"envoy-{next_base_id()}.json"
    path.write_text(json.dumps(config))
    admin = config["admin"]["address"]["socket_address"]["port_value"]
    log = (workdir / f"{path.stem}.log").open("w")
    proc = subprocess.Popen(
        [
            str(envoy_binary()),
            "-c",
            str(path),
            "--base-id",
            str(next_base_id()),
            "--concurrency",
            "1",
            "-l",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"envoy exited {proc.returncode}: see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"envoy not ready in 20 s: see {log.name}")
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def post_chat(
    port: int, headers: dict[str, str], path: str = "/v1/chat/completions"
) -> tuple[int, dict[str, Any] | None]:
    """POST a small chat completion through Envoy (``path`` sent as it is); returns
    (status, JSON body or None when the body is not JSON)."""
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body, {"content-type": "application/json", **headers})
        response = conn.getresponse()
        status, raw = response.status, response.read()
    finally:
        conn.close()
    try:
        doc: dict[str, Any] = json.loads(raw)
    except ValueError:
        return status, None
    return status, doc


def upstream(name: str, path: str = "/v1/chat/completions") -> dict[str, Any]:
    """What the recorder answers for a request forwarded to ``name`` unprocessed."""
    return {"upstream": name, "route_header": None, "path": path, "planted": {}}
