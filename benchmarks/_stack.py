"""Shared pieces of the benchmarks: a fast upstream, Envoy variants, wrk, process CPU."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from extproc.demo.processes import ManagedProcess, free_port, patch_envoy_config, start_envoy

REPO = Path(__file__).resolve().parents[1]
ENVOY_TEMPLATE = REPO / "envoy" / "routeiq-fail-closed.yaml"
CLUSTERS = ("demo_eco", "demo_premium", "demo_local", "litellm")

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"

CHAT_RESPONSE = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
    }
)


def export_tree(ref: str, dest: Path, only: list[str]) -> Path:
    """``ref``'s ``extproc`` package in ``dest``, with ``only`` copied from the working tree."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "extproc"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for name in only:
        shutil.copyfile(REPO / name, dest / name)
    return dest


def ensure_wrk() -> str:
    """The wrk binary, installed from Debian when missing: a real load generator."""
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=False)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def start_upstream(workdir: Path) -> tuple[ManagedProcess, int]:
    """A separate Envoy answering every request with a fixed completion: an upstream fast
    enough that the proxy path, not the backend, is what gets measured."""
    port, admin = free_port(), free_port()
    config: dict[str, Any] = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "upstream",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": HCM + "HttpConnectionManager",
                                        "stat_prefix": "upstream",
                                        "route_config": {
                                            "virtual_hosts": [
                                                {
                                                    "name": "all",
                                                    "domains": ["*"],
                                                    "routes": [
                                                        {
                                                            "match": {"prefix": "/"},
                                                            "direct_response": {
                                                                "status": 200,
                                                                "body": {
                                                                    "inline_string": CHAT_RESPONSE
                                                                },
                                                            },
                                                        }
                                                    ],
                                                }
                                            ]
                                        },
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {"@type": ROUTER},
                                            }
                                        ],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        },
    }
    return start_envoy(config, workdir, admin, concurrency=1), port


def proxy_config(upstream_port: int, routeiq_port: int | None) -> tuple[dict[str, Any], int, int]:
    """The shipped Envoy config on free ports; without ext_proc when ``routeiq_port`` is None."""
    port, admin = free_port(), free_port()
    cfg = patch_envoy_config(
        yaml.safe_load(ENVOY_TEMPLATE.read_text()),
        listener_port=port,
        admin_port=admin,
        cluster_ports={**dict.fromkeys(CLUSTERS, upstream_port), "routeiq": routeiq_port or 1},
    )
    if routeiq_port is None:
        cfg = copy.deepcopy(cfg)
        hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        filters = hcm["typed_config"]["http_filters"]
        hcm["typed_config"]["http_filters"] = [
            f for f in filters if f["name"] != "envoy.filters.http.ext_proc"
        ]
    return cfg, port, admin


def start_proxy(
    workdir: Path, upstream_port: int, routeiq_port: int | None
) -> tuple[ManagedProcess, int]:
    """The shipped Envoy (``--concurrency 1``) in front of the upstream; its listener port."""
    cfg, port, admin = proxy_config(upstream_port, routeiq_port)
    return start_envoy(cfg, workdir, admin, concurrency=1), port


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (all its threads).

    Read from ``/proc/<pid>/stat`` (fields 14 and 15, in clock ticks: 10 ms
    resolution, so measure over thousands of requests).
    """
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def rss_mib(pid: int | str = "self") -> float:
    """Resident set size of process ``pid`` (default: this one) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main_thread_cpu_s(pid: int) -> float:
    """Like :func:`process_cpu_s` for the process's main thread only: in an asyncio
    server, the event loop (what every stream waits on)."""
    return _stat_cpu_s(Path(f"/proc/{pid}/task/{pid}/stat"))


def _stat_cpu_s(path: Path) -> float:
    text = path.read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def run_wrk(
    wrk: str,
    url: str,
    body: str,
    headers: dict[str, str],
    workdir: Path,
    connections: int = 16,
    seconds: int = 10,
    threads: int = 1,
) -> WrkResult:
    script = workdir / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps,
        p50,
        p99,
        int(non2xx.group(1)) if non2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )
