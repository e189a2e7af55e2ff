"""``routeiq policy test`` and ``routeiq policy eval``: the operator's Rego tools.

``register(subparsers)`` adds the ``policy`` command to the lead's ``routeiq`` parser;
each sub-command's function takes the parsed args and returns the exit status.
``render_explain(result)`` is the policy part of ``routeiq explain``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from extproc.config.errors import ConfigError
from extproc.policy.bundle import load_bundle
from extproc.policy.engine import build_policy_engine
from extproc.policy.result import PolicyResult
from extproc.policy.spec import PolicySpec
from extproc.policy.testing import run_tests

RULE = "-" * 80


def _default_data(dirs: list[str]) -> list[str]:
    """``<dir>/data`` for each policy directory that has one."""
    return [str(Path(d) / "data") for d in dirs if (Path(d) / "data").is_dir()]


def render_explain(result: PolicyResult) -> str:
    """Human-readable policy part of ``routeiq explain`` (one line per fact)."""
    doc = result.explain()
    verdict = "ALLOW" if doc["allowed"] else f"DENY {doc['http_status']}"
    lines = [f"policy: {verdict} by {doc['engine']} in {doc['latency_us']} us"]
    if doc.get("engine_unavailable"):
        lines.append("  engine unavailable: the failure mode decided")
    if doc["reason"]:
        lines.append(f"  reason: {doc['reason']}")
    if doc.get("message"):
        lines.append(f"  message: {doc['message']}")
    if doc["rule_ids"]:
        lines.append(f"  rules: {', '.join(doc['rule_ids'])}")
    for key, value in doc["constraints"].items():
        lines.append(f"  {key}: {value}")
    for key in ("headers", "response_headers"):
        if key in doc:
            lines.append(f"  {key}: {doc[key]}")
    if "dry_run" in doc:
        dry = doc["dry_run"]
        lines.append(f"  dry run: would deny ({', '.join(dry['rule_ids'])}): {dry['message']}")
    return "\n".join(lines)


def _cmd_test(args: argparse.Namespace) -> int:
    dirs = args.dir or ["policies"]
    try:
        bundle = load_bundle(dirs, args.data or _default_data(dirs), Path.cwd())
        outcomes = run_tests(bundle, args.engine)
    except (ConfigError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    current = None
    for outcome in outcomes:
        if outcome.file != current:
            current = outcome.file
            print(f"{current}:")
        print(f"{outcome.name}: {outcome.status} ({outcome.seconds * 1e3:.2f}ms)")
        if outcome.error:
            print(f"  {outcome.error}")
    passed = sum(o.status == "PASS" for o in outcomes)
    failed = [o for o in outcomes if o.status != "PASS"]
    print(RULE)
    if not outcomes:
        print("no test_ rules found")
        return 2
    if failed:
        print(f"PASS: {passed}/{len(outcomes)}")
        print(f"FAIL: {len(failed)}/{len(outcomes)}")
        return 2
    print(f"PASS: {passed}/{len(outcomes)}")
    return 0


def _load_input(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.endswith((".yaml", ".yml")) else orjson.loads(text)


def _spec_from_args(args: argparse.Namespace) -> tuple[PolicySpec, Path]:
    if args.config:
        from extproc.config.snapshot import load_config  # the lead's loader, CLI-only

        config, _ = load_config(Path(args.config))
        return config.spec.policy, Path(args.config).resolve().parent
    dirs = list(args.policies or ["policies"])
    data = tuple(args.data or _default_data(dirs))
    spec = PolicySpec(engine="embedded", modules=tuple(dirs), data=data, query=args.query)
    return spec, Path.cwd()


async def _evaluate(spec: PolicySpec, base_dir: Path, doc: Any) -> PolicyResult:
    engine = build_policy_engine(spec, base_dir)
    try:
        return await engine.evaluate(doc)
    finally:
        await engine.aclose()


def _cmd_eval(args: argparse.Namespace) -> int:
    try:
        spec, base_dir = _spec_from_args(args)
        doc = _load_input(args.input)
        result = asyncio.run(_evaluate(spec, base_dir, doc))
    except (ConfigError, OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.explain:
        print(render_explain(result))
    else:
        out = {"decision": result.decision, "result": result.explain()}
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if not result.engine_unavailable else 3


def register(subparsers: Any) -> None:
    """Add ``routeiq policy {test,eval}`` to the ``routeiq`` sub-command parsers."""
    policy = subparsers.add_parser("policy", help="test and evaluate Rego policies")
    sub = policy.add_subparsers(dest="policy_command", required=True)

    test = sub.add_parser("test", help="run all test_ rules and report pass/fail (like opa test)")
    test.add_argument("--dir", action="append", default=None,
                      help="policy directory (repeatable; default: policies)")
    test.add_argument("--data", action="append", default=None,
                      help="data documents (default: <dir>/data)")
    test.add_argument("--engine", choices=("regorus", "opa"), default="regorus",
                      help="regorus (embedded) or the real OPA engine (needs opa-golib bindings)")
    test.set_defaults(func=_cmd_test)

    ev = sub.add_parser("eval", help="print the decision for an input document")
    ev.add_argument("--input", required=True, help="input document (JSON or YAML; - for stdin)")
    ev.add_argument("--config", help="RoutingConfig YAML: use its policy section")
    ev.add_argument("--policies", action="append", help="policy directory (default: policies)")
    ev.add_argument("--data", action="append", help="data documents (default: <dir>/data)")
    ev.add_argument("--query", default="data.routeiq.decision")
    ev.add_argument("--explain", action="store_true", help="human-readable output")
    ev.set_defaults(func=_cmd_eval)
