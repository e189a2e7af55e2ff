"""``routeiq demo``: Envoy + RouteIQ + three demo backends on loopback, with sample traffic.

Uses the shipped files as they are (``config/routeiq.yaml``, ``envoy/routeiq-fail-closed.yaml``)
on their own ports when these are free, on free ports otherwise. For each sample it
prints where the request went and, from the admin port's ``/v1/explain`` (nothing
charged, nothing forwarded), why: the profile, the tier, the policy notes. Logs and
generated files live in a temporary directory removed on exit, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

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
        "profile reasoning",
        {"model": "reasoning", "messages": _msg("Prove that sqrt(2) is irrational.")},
        {},
    ),
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


@dataclass
class DemoStack:
    """The running processes and the ports they listen on."""

    ports: dict[str, int]
    backend_ports: dict[str, int]
    procs: list[ManagedProcess] = field(default_factory=list)


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


def explain_why(admin_port: int, body: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The decision in words from the admin port's explain (nothing charged), or None
    when it adds nothing to the status line: a refusal that no policy rule explains."""
    envelope = json.dumps({"path": CHAT, "headers": headers, "body": body}).encode()
    status, _, raw = http_post(admin_port, "/v1/explain", envelope)
    if status != 200:
        return None
    doc = json.loads(raw)
    why, decision = doc.get("why"), doc.get("decision") or {}
    explained = decision.get("rule_ids") or decision.get("explain", {}).get("findings")
    if not isinstance(why, str) or (decision.get("outcome") == "denied" and not explained):
        return None
    return why


def _ports() -> tuple[dict[str, int], dict[str, int]]:
    wanted = [*DEFAULT_PORTS.values(), *(p for _, p in BACKENDS.values())]
    if not any(_busy(p) for p in wanted):
        return dict(DEFAULT_PORTS), {c: p for c, (_, p) in BACKENDS.items()}
    return {k: free_port() for k in DEFAULT_PORTS}, {c: free_port() for c in BACKENDS}


def _start(repo: Path, workdir: Path, stack: DemoStack) -> None:
    """Backends, then RouteIQ, then Envoy; each waited for before the next."""
    for cluster, (name, _) in BACKENDS.items():
        port = stack.backend_ports[cluster]
        args = [sys.executable, "-m", "extproc.demo.backend", "--name", name, "--port", str(port)]
        proc = ManagedProcess(args, workdir / f"backend-{name}.log")
        stack.procs.append(proc)
        wait_for_port(port, 20, proc.proc)
    print(f"demo backends up: {', '.join(f'{c}:{p}' for c, p in stack.backend_ports.items())}")
    config, ports = repo / "config" / "routeiq.yaml", stack.ports
    admin = {"ROUTEIQ_ADMIN_PORT": str(ports["routeiq_admin"])}
    stack.procs.append(start_routeiq(config, ports["routeiq"], workdir, admin))
    print(
        f"routeiq serving ext_proc on 127.0.0.1:{ports['routeiq']} ({config}); "
        f"admin http://127.0.0.1:{ports['routeiq_admin']} (/metrics, /v1/explain)"
    )
    envoy_cfg = patch_envoy_config(
        yaml.safe_load((repo / "envoy" / "routeiq-fail-closed.yaml").read_text()),
        listener_port=ports["listener"],
        admin_port=ports["admin"],
        cluster_ports={**stack.backend_ports, "routeiq": ports["routeiq"]},
    )
    stack.procs.append(start_envoy(envoy_cfg, workdir, ports["admin"]))
    print(f"envoy listening on 127.0.0.1:{ports['listener']} (admin {ports['admin']})\n")


def _send_samples(stack: DemoStack) -> int:
    """Send every sample through Envoy; print where it went and why. Returns 5xx count."""
    failures = 0
    for title, body, headers in SAMPLES:
        why = None
        if isinstance(body, dict):  # explained first: the budget is not spent yet
            why = explain_why(stack.ports["routeiq_admin"], body, headers)
        raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, got, raw = http_post(stack.ports["listener"], CHAT, raw_body, headers)
        print(f"  {title:<24} {status}  {_describe(status, got, raw)}")
        if why:
            print(f"  {'':<24}      why: {why}")
        failures += status >= 500
    return failures


def _wait_until_stopped(stack: DemoStack) -> int:
    print(
        "\nTry it (Ctrl-C stops everything):\n"
        f"  curl -s http://127.0.0.1:{stack.ports['listener']}{CHAT} "
        "-H 'content-type: application/json' "
        '-d \'{"model": "auto", "messages": [{"role": "user", '
        '"content": "Prove that sqrt(2) is irrational."}]}\' -i'
    )
    while True:
        dead = [p for p in stack.procs if not p.alive()]
        if dead:
            _report_dead(dead)
            return 1
        time.sleep(1.0)


def _report_dead(dead: list[ManagedProcess]) -> None:
    for proc in dead:
        tail = "\n    ".join(proc.output().splitlines()[-10:])
        print(
            f"a demo process exited: {proc.args[0]}; its last lines:\n    {tail}", file=sys.stderr
        )


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _stopping(stack: DemoStack) -> Iterator[None]:
    """Stop every process on the way out, whatever ends the demo."""
    try:
        yield
    finally:
        for proc in reversed(stack.procs):
            with contextlib.suppress(Exception):
                proc.stop()


def run_demo(repo: Path, once: bool = False) -> int:
    """Run the demo; 0 when every sample got an answer below 500 (``once``) or the user
    stopped it, 1 when a process died or a sample got a 5xx."""
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with tempfile.TemporaryDirectory(prefix="routeiq-demo-") as tmp:
            stack = DemoStack(*_ports())
            with _stopping(stack):
                try:
                    _start(repo, Path(tmp), stack)
                except (RuntimeError, TimeoutError) as exc:
                    print(f"routeiq demo: {exc}", file=sys.stderr)
                    return 1
                failures = _send_samples(stack)
                if once:
                    return 1 if failures else 0
                return _wait_until_stopped(stack)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
