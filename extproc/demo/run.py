"""``routeiq demo``: Envoy + RouteIQ + three demo backends on loopback, with sample traffic.

Uses the shipped files as they are (``config/routeiq.yaml``, ``envoy/routeiq-fail-closed.yaml``)
on their own ports when these are free, on free ports otherwise.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from extproc.demo.processes import (
    ManagedProcess,
    free_port,
    http_post,
    patch_envoy_config,
    start_envoy,
    start_routeiq,
    wait_for_port,
)

BACKENDS = {
    "demo_eco": ("eco", 18001),
    "demo_premium": ("premium", 18002),
    "demo_local": ("local", 18003),
}
DEFAULT_PORTS = {"listener": 10000, "admin": 9901, "routeiq": 50051, "routeiq_admin": 9180}

CHAT = "/v1/chat/completions"


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


SAMPLES: list[tuple[str, dict[str, Any] | bytes, dict[str, str]]] = [
    ("explicit model", {"model": "gpt-4o-mini", "messages": _msg("Hi there!")}, {}),
    ("alias, model rewritten", {"model": "gpt4", "messages": _msg("Hello")}, {}),
    ("upstream model name", {"model": "llama-3.1-8b", "messages": _msg("Hello")}, {}),
    ("auto: chit-chat", {"model": "auto", "messages": _msg("hey, how was your weekend?")}, {}),
    (
        "auto: coding",
        {
            "model": "auto",
            "messages": _msg(
                "Write a Python function that parses an ISO 8601 date and add unit tests."
            ),
        },
        {},
    ),
    ("profile eco", {"model": "routeiq/eco", "messages": _msg("Summarise: the cat sat.")}, {}),
    (
        "spoofed route header",
        {"model": "gpt-4o-mini", "messages": _msg("x")},
        {"x-routeiq-cluster": "demo_premium"},
    ),
    (
        "policy: team allow-list",
        {"model": "gpt-4o", "messages": _msg("Hello")},
        {"authorization": "Bearer sk-demo-support"},
    ),
    (
        "policy: confidential",
        {
            "model": "auto",
            "messages": _msg("Refund card 4111 1111 1111 1111 and summarise the ticket."),
        },
        {},
    ),
    *[
        (
            f"budget: request {i} of 4",
            {"model": "gpt-4o-mini", "messages": _msg("hi")},
            {"authorization": "Bearer sk-demo-demo-budget"},
        )
        for i in range(1, 5)
    ],
    ("unknown model", {"model": "gpt-9", "messages": _msg("x")}, {}),
    ("malformed JSON", b'{"model": "gpt-4o-mini", "messages": [', {}),
]


def _busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _describe(status: int, headers: dict[str, str], body: bytes) -> str:
    if status != 200:
        try:
            err = json.loads(body)["error"]
            return f"refused: {err.get('code')}: {err.get('message')}"
        except (ValueError, KeyError, TypeError):
            return f"refused: {body[:120]!r}"
    parts = [
        f"-> {headers.get('x-routeiq-backend', '?')} (model sent upstream: "
        f"{headers.get('x-demo-received-model', '?')})"
    ]
    for key in ("x-routeiq-category", "x-routeiq-tier", "x-routeiq-overhead-ms"):
        if key in headers:
            parts.append(f"{key.removeprefix('x-routeiq-')}={headers[key]}")
    return "  ".join(parts)


def run_demo(repo: Path, once: bool = False) -> int:
    config = repo / "config" / "routeiq.yaml"
    envoy_template = repo / "envoy" / "routeiq-fail-closed.yaml"
    workdir = Path(tempfile.mkdtemp(prefix="routeiq-demo-"))
    wanted = [*DEFAULT_PORTS.values(), *(p for _, p in BACKENDS.values())]
    use_defaults = not any(_busy(p) for p in wanted)
    ports = dict(DEFAULT_PORTS) if use_defaults else {k: free_port() for k in DEFAULT_PORTS}
    backend_ports = {c: (p if use_defaults else free_port()) for c, (_, p) in BACKENDS.items()}

    procs: list[ManagedProcess] = []
    try:
        for cluster, (name, _) in BACKENDS.items():
            proc = ManagedProcess(
                [
                    sys.executable,
                    "-m",
                    "extproc.demo.backend",
                    "--name",
                    name,
                    "--port",
                    str(backend_ports[cluster]),
                ],
                workdir / f"backend-{name}.log",
            )
            procs.append(proc)
            wait_for_port(backend_ports[cluster], 20, proc.proc)
        print(f"demo backends up: {', '.join(f'{c}:{p}' for c, p in backend_ports.items())}")
        procs.append(
            start_routeiq(
                config,
                ports["routeiq"],
                workdir,
                {"ROUTEIQ_ADMIN_PORT": str(ports["routeiq_admin"])},
            )
        )
        print(
            f"routeiq serving ext_proc on 127.0.0.1:{ports['routeiq']} ({config}); "
            f"admin http://127.0.0.1:{ports['routeiq_admin']} (/metrics, /v1/explain)"
        )
        envoy_cfg = patch_envoy_config(
            yaml.safe_load(envoy_template.read_text()),
            listener_port=ports["listener"],
            admin_port=ports["admin"],
            cluster_ports={**backend_ports, "routeiq": ports["routeiq"]},
        )
        procs.append(start_envoy(envoy_cfg, workdir, ports["admin"]))
        print(f"envoy listening on 127.0.0.1:{ports['listener']} (admin {ports['admin']})\n")

        failures = 0
        for title, body, headers in SAMPLES:
            raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()
            status, got, raw = http_post(ports["listener"], CHAT, raw_body, headers)
            print(f"  {title:<24} {status}  {_describe(status, got, raw)}")
            failures += status >= 500
        print(f"\nlogs in {workdir}")
        if once:
            return 1 if failures else 0
        print(
            "\nTry it (Ctrl-C stops everything):\n"
            f"  curl -s http://127.0.0.1:{ports['listener']}{CHAT} "
            "-H 'content-type: application/json' "
            '-d \'{"model": "auto", "messages": [{"role": "user", '
            '"content": "Prove that sqrt(2) is irrational."}]}\' -i'
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.wait(1):
            dead = [p.args[0] for p in procs if not p.alive()]
            if dead:
                print(f"a demo process exited: {dead}; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        for proc in reversed(procs):
            with contextlib.suppress(Exception):
                proc.stop()
