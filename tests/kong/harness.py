"""Plays Kong's part against the REAL ``kong-python-pluginserver``, over its Unix socket.

Kong cannot be installed here, so this harness does what Kong's
``kong/runloop/plugin_servers/mp_rpc.lua`` does, message for message:

- requests are MessagePack arrays ``[0, msgid, method, [arg]]``, answers
  ``[1, msgid, error, result]`` (notifications ``[2, ...]`` are skipped);
- ``plugin.StartInstance {Name, Config=<JSON of the plugin conf>}``;
- ``plugin.HandleEvent {InstanceId, EventName}``; while the answer's ``Data`` is not
  ``"ret"`` it is a PDK call ``{Method, Args}``: the harness computes the PDK result
  from its fake request and answers with ``plugin.Step`` (``plugin.StepMultiMap`` for
  header maps, ``plugin.StepError`` for a PDK error), ``{EventId, Data}``;
- results get Kong's encodings: header values as arrays of strings (``fix_mmap``),
  bodies as MessagePack ``bin`` (``fix_raw``);
- ``kong.response.exit`` in the access phase is delayed by Kong (the plugin iterator
  sends the response after the handler), so Kong answers it with one more
  ``plugin.Step`` carrying nil; kong-pdk has already dropped the event and answers
  "event id ... not found", which Kong logs. The harness does the same.

What the plugin asked Kong to do is recorded per request in ``Record``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "kong"
SERVER_BIN = Path(sys.executable).parent / "kong-python-pluginserver"
SOCKET_NAME = "routeiq.sock"

# mp_rpc.lua get_step_method: typed Step methods by PDK call.
STEP_METHOD = {
    "kong.request.get_query": "plugin.StepMultiMap",
    "kong.request.get_headers": "plugin.StepMultiMap",
    "kong.response.get_headers": "plugin.StepMultiMap",
    "kong.service.response.get_headers": "plugin.StepMultiMap",
}
BODY_BUFFER_ERROR = (
    "request body did not fit into client body buffer, consider raising 'client_body_buffer_size'"
)


class RpcError(Exception):
    """The plugin server answered a call with an error."""


class PluginServer:
    """A ``kong-python-pluginserver`` process in its own session, on a socket in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        gevent: bool = False,
        lua_style: bool = True,
        env: dict[str, str] | None = None,
        plugin_dir: Path = PLUGIN_DIR,
        server_bin: Path = SERVER_BIN,
        cwd: Path = REPO,
    ) -> None:
        self.workdir = workdir
        self.cwd = cwd
        self.socket_path = workdir / SOCKET_NAME
        self.args = [str(server_bin), "-p", str(workdir), "--socket-name", SOCKET_NAME]
        self.args += ["-d", str(plugin_dir)]
        if gevent:
            self.args.append("-g")
        if not lua_style:
            self.args.append("--no-lua-style")
        self.env = {**os.environ, "ROUTEIQ_DECISION_LOG": "off", **(env or {})}
        self.log_path = workdir / "pluginserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> PluginServer:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a signal to the test runner does not reach it
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"plugin server exited: {self.log()}")
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.socket_path))
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"plugin server did not listen within {timeout} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def __enter__(self) -> PluginServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Rpc:
    """MessagePack-RPC client over one Unix socket connection, as mp_rpc.lua speaks it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msg_id = 0
        self.calls = 0

    def call(self, method: str, arg: Any) -> Any:
        self.msg_id += 1
        self.calls += 1
        self.sock.sendall(msgpack.packb([0, self.msg_id, method, [arg]], use_bin_type=True))
        while True:
            for msg in self.unpacker:
                if msg[0] == 2:  # notification
                    continue
                assert msg[0] == 1 and msg[1] == self.msg_id, msg
                if msg[2] is not None:
                    raise RpcError(msg[2])
                return msg[3]
            data = self.sock.recv(65536)
            if not data:
                raise RpcError("connection closed by the plugin server")
            self.unpacker.feed(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Request:
    """The client's request as Kong holds it, plus what the upstream will answer."""

    method: str = "POST"
    path: str = "/v1/chat/completions"
    headers: dict[str, str | list[str]] = field(
        default_factory=lambda: {"content-type": "application/json"}
    )
    body: bytes = b""
    upstream_status: int | None = 200
    upstream_body: bytes = b""

    @classmethod
    def chat(cls, model: str, text: str = "Hello there", **headers: str) -> Request:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})
        hdrs: dict[str, str | list[str]] = {"content-type": "application/json"}
        hdrs.update({k.replace("_", "-").lower(): v for k, v in headers.items()})
        hdrs["content-length"] = str(len(body))
        return cls(headers=hdrs, body=body.encode())


@dataclass
class Record:
    """What the plugin asked Kong to do for one request (both phases)."""

    pdk_calls: dict[str, list[str]] = field(default_factory=dict)  # phase -> PDK methods
    rpc_calls: dict[str, int] = field(default_factory=dict)  # phase -> RPC messages sent
    upstream: str | None = None
    target: tuple[str, int] | None = None
    body: bytes | None = None
    upstream_headers: dict[str, str] = field(default_factory=dict)
    set_headers_calls: int = 0
    cleared: list[str] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    buffering: bool = False
    ctx: dict[str, Any] = field(default_factory=dict)
    exit: tuple[int, bytes, dict[str, str]] | None = None
    unknown: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what Kong would kong.log.err

    @property
    def error_json(self) -> dict[str, Any]:
        assert self.exit is not None, "the plugin did not answer the request itself"
        doc: dict[str, Any] = json.loads(self.exit[1])
        return doc


class Kong:
    """One Kong worker: holds plugin instances and plays requests through them."""

    def __init__(self, socket_path: Path, upstreams: set[str] | None = None) -> None:
        self.rpc = Rpc(socket_path)
        self.upstreams = upstreams  # names Kong knows; None: any name
        self.body_buffer_size = 1024 * 1024  # client_body_buffer_size

    def close(self) -> None:
        self.rpc.close()

    def plugin_info(self, name: str = "routeiq") -> dict[str, Any]:
        info: dict[str, Any] = self.rpc.call("plugin.GetPluginInfo", name)
        return info

    def start_instance(self, config: dict[str, Any], name: str = "routeiq") -> int:
        conf = {**config, "__key__": f"plugins:{name}", "__seq__": 1}
        status = self.rpc.call("plugin.StartInstance", {"Name": name, "Config": json.dumps(conf)})
        return int(status["Id"])

    def request(self, instance: int, req: Request) -> Record:
        """Access phase, then (as Kong does for every request) the log phase."""
        record = Record()
        self.event(instance, "access", req, record)
        self.event(instance, "log", req, record)
        return record

    def event(self, instance: int, phase: str, req: Request, record: Record) -> None:
        calls, rpc_before = record.pdk_calls.setdefault(phase, []), self.rpc.calls
        step_in = self.rpc.call("plugin.HandleEvent", {"InstanceId": instance, "EventName": phase})
        event_id = step_in["EventId"]
        try:
            while step_in["Data"] != "ret":
                method, args = step_in["Data"]["Method"], step_in["Data"]["Args"] or []
                calls.append(method)
                result, err = self.pdk(method, list(args), req, record)
                step_method = "plugin.StepError" if result is None and err else None
                step_method = step_method or STEP_METHOD.get(method, "plugin.Step")
                try:
                    step_in = self.rpc.call(
                        step_method, {"EventId": event_id, "Data": err or result}
                    )
                except RpcError as exc:
                    if method == "kong.response.exit" and "not found" in str(exc):
                        record.errors.append(str(exc))  # kong.log.err, request unaffected
                        break
                    raise
        finally:
            record.rpc_calls[phase] = self.rpc.calls - rpc_before

    def pdk(self, method: str, args: list[Any], req: Request, rec: Record) -> tuple[Any, Any]:
        """Kong's answer to one PDK call: ``(result, error)``."""
        if method == "kong.request.get_path":
            return req.path.split("?", 1)[0], None
        if method == "kong.request.get_method":
            return req.method, None
        if method == "kong.request.get_headers":
            return {
                k.lower(): v if isinstance(v, list) else [v] for k, v in req.headers.items()
            }, None
        if method == "kong.request.get_raw_body":
            if len(req.body) > self.body_buffer_size:
                return None, BODY_BUFFER_ERROR
            return req.body, None
        if method == "kong.service.set_upstream":
            if self.upstreams is not None and args[0] not in self.upstreams:
                return None, f"could not find an Upstream named '{args[0]}'"
            rec.upstream = args[0]
            return True, None
        if method == "kong.service.set_target":
            rec.target = (args[0], int(args[1]))
            return None, None
        if method == "kong.service.request.set_raw_body":
            rec.body = args[0] if isinstance(args[0], bytes) else str(args[0]).encode()
            return None, None
        if method == "kong.service.request.set_headers":
            rec.set_headers_calls += 1
            rec.upstream_headers.update({k.lower(): v for k, v in args[0].items()})
            return None, None
        if method == "kong.service.request.clear_header":
            rec.cleared.append(args[0].lower())
            return None, None
        if method == "kong.response.set_headers":
            rec.response_headers.update({k.lower(): v for k, v in args[0].items()})
            return None, None
        if method == "kong.service.request.enable_buffering":
            rec.buffering = True
            return None, None
        if method == "kong.ctx.shared.set":
            rec.ctx[args[0]] = args[1]
            return None, None
        if method == "kong.ctx.shared.get":
            return rec.ctx.get(args[0]), None
        if method == "kong.response.exit":
            body = args[1] if len(args) > 1 else b""
            headers = args[2] if len(args) > 2 and args[2] else {}
            rec.exit = (int(args[0]), body, {k.lower(): v for k, v in headers.items()})
            return None, None
        if method == "kong.service.response.get_status":
            return (None if rec.exit else req.upstream_status), None
        if method == "kong.service.response.get_raw_body":
            return (req.upstream_body if rec.buffering else None), None
        rec.unknown.append(method)  # Kong: "could not find pdk method", nil
        return None, None
