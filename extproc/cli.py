"""The ``routeiq`` command: serve, and the operator tools around the same code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn, cast

from pydantic import ValidationError

from extproc import __version__
from extproc.config.errors import ConfigError
from extproc.config.settings import Settings


def _settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        for err in exc.errors():
            name = "ROUTEIQ_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"routeiq: invalid setting {name}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


# ``serve`` flags and the settings they override.
_SERVE_FLAGS = {
    "config": "config_path",
    "host": "grpc_host",
    "port": "grpc_port",
    "workers": "workers",
    "admin_host": "admin_host",
    "admin_port": "admin_port",
}


def _serve_settings(args: argparse.Namespace) -> Settings:
    """Environment settings with the given flags on top; a bad value exits 2, one line each."""
    settings = _settings_or_exit()
    overrides = {
        field: getattr(args, flag)
        for flag, field in _SERVE_FLAGS.items()
        if getattr(args, flag) is not None
    }
    if not overrides:
        return settings
    try:
        return Settings(**{**settings.model_dump(), **overrides})
    except ValidationError as exc:
        flags = {field: flag for flag, field in _SERVE_FLAGS.items()}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = "--" + flags.get(field, field).replace("_", "-")
            print(f"routeiq: invalid {name}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def port_problem(host: str, port: int) -> str | None:
    """Why nothing can listen on ``host:port`` now (None when it can; port 0 always can).

    Binds a throwaway socket with ``SO_REUSEADDR`` but not ``SO_REUSEPORT``: a port held
    by any listener fails, including another RouteIQ, which gRPC's ``SO_REUSEPORT``
    (set so that workers share a port) would otherwise join silently.
    """
    if port == 0:
        return None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"cannot resolve {host!r}: {exc.strerror}"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            return (exc.strerror or str(exc)).lower()
    return None


def _listen_problem(settings: Settings) -> str | None:
    """The first port ``serve`` cannot listen on, as one line (a worker skips the check:
    its siblings legitimately share the gRPC port, and the parent checked both)."""
    if settings.worker_index is not None:
        return None
    for what, host, port in (
        ("gRPC", settings.grpc_host, settings.grpc_port),
        ("admin", settings.admin_host, settings.admin_port),
    ):
        problem = port_problem(host, port)
        if problem is not None:
            return f"cannot listen for {what} on {host}:{port}: {problem}"
    return None


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _serve_settings(args)
    problem = _listen_problem(settings)
    if problem is not None:
        print(f"routeiq: {problem}", file=sys.stderr)
        return 2
    from extproc.server.app import serve

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"routeiq: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. a port taken between the check and the bind
        print(f"routeiq: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # grpc's bind failure is a RuntimeError
        if "Failed to bind" not in str(exc):
            raise
        print(f"routeiq: {str(exc).split(';', 1)[0]}", file=sys.stderr)
        return 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from extproc.demo.run import run_demo

    return run_demo(Path(args.repo), once=args.once)


def _cmd_config_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from extproc.config.validate import validate

    snapshot, problems = validate(Path(args.file), Path(args.envoy) if args.envoy else None)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if snapshot is not None and not problems:
        print(
            f"{args.file}: OK (version {snapshot.version}, {len(snapshot.backends)} backends, "
            f"policy {snapshot.spec.policy.engine}, routing {snapshot.spec.routing.strategy})"
        )
    return 1 if problems else 0


def _cmd_config_docs(args: argparse.Namespace) -> int:
    from extproc.config.reference import render_reference

    sys.stdout.write(render_reference())
    return 0


def parse_headers(items: Sequence[str], option: str = "--header") -> dict[str, str]:
    """``'name: value'`` strings as a dict; a malformed one is a ValueError naming it."""
    headers: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise ValueError(
                f"{option} {item!r} is not 'name: value' (e.g. {option} 'x-team: support')"
            )
        headers[name.strip().lower()] = value.strip()
    return headers


def read_body(path: str, option: str = "--body") -> bytes:
    """The bytes of ``path`` ('-': stdin); an unreadable file is a ValueError naming it."""
    if path == "-":
        if sys.stdin.isatty():
            print("routeiq: reading the request body from stdin (end with Ctrl-D)", file=sys.stderr)
        return sys.stdin.buffer.read()
    from pathlib import Path

    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {option} {path}: {exc.strerror or exc}") from None


def _cmd_explain(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from extproc.config.snapshot import build_snapshot
    from extproc.explain import explain_request

    try:
        headers = parse_headers(args.header)
        body = read_body(args.body)
    except ValueError as exc:
        print(f"routeiq explain: {exc}", file=sys.stderr)
        return 2
    try:
        snapshot = build_snapshot(Path(args.config))
    except ConfigError as exc:
        print(f"routeiq: {exc}", file=sys.stderr)
        return 2
    doc = asyncio.run(explain_request(snapshot, body, headers, args.path))
    print(json.dumps(doc, indent=2, default=str))
    snapshot.close()
    return 0


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line on stderr (exit 2), like every
    other ``routeiq`` error; ``--help`` still shows the usage. Subcommand parsers
    inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="routeiq",
        description="RouteIQ: policy and routing for OpenAI-format LLM traffic. 'serve' runs "
        "the Envoy ext_proc server; the other commands are the operator's tools around the "
        "same code.",
    )
    parser.add_argument("--version", action="version", version=f"routeiq {__version__}")
    # Typed as plain parsers for the registering modules; they are OneLineParsers.
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True),
    )

    serve = sub.add_parser("serve", help="run the ext_proc gRPC server")
    serve.add_argument("--config", help="RoutingConfig YAML (overrides ROUTEIQ_CONFIG_PATH)")
    serve.add_argument("--host", help="bind address (overrides ROUTEIQ_GRPC_HOST)")
    serve.add_argument("--port", type=int, help="gRPC port (overrides ROUTEIQ_GRPC_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes sharing the gRPC port (overrides ROUTEIQ_WORKERS)",
    )
    serve.add_argument(
        "--admin-host", help="admin HTTP bind address (overrides ROUTEIQ_ADMIN_HOST)"
    )
    serve.add_argument(
        "--admin-port", type=int, help="admin HTTP port (overrides ROUTEIQ_ADMIN_PORT)"
    )
    serve.set_defaults(func=_cmd_serve)

    demo = sub.add_parser("demo", help="run Envoy + RouteIQ + demo backends with sample traffic")
    demo.add_argument("--repo", default=".", help="checkout holding config/ and envoy/")
    demo.add_argument("--once", action="store_true", help="send the samples, then stop")
    demo.set_defaults(func=_cmd_demo)

    config = sub.add_parser("config", help="check a RoutingConfig")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    val = config_sub.add_parser("validate", help="build the snapshot; check Envoy routes")
    val.add_argument("file", help="RoutingConfig YAML")
    val.add_argument("--envoy", help="Envoy config whose routes must reach every backend")
    val.set_defaults(func=_cmd_config_validate)

    docs = config_sub.add_parser("docs", help="print the configuration reference (Markdown)")
    docs.set_defaults(func=_cmd_config_docs)

    exp = sub.add_parser("explain", help="print the full decision for a request body")
    exp.add_argument("--config", default="config/routeiq.yaml", help="RoutingConfig YAML")
    exp.add_argument("--body", default="-", help="OpenAI request body file ('-': stdin)")
    exp.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    exp.add_argument("--path", default="/v1/chat/completions")
    exp.set_defaults(func=_cmd_explain)

    from extproc.policy.cli import register as register_policy
    from extproc.report.cli import register as register_report
    from extproc.routing.cli import register as register_routing

    register_policy(sub)
    register_routing(sub)
    register_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
