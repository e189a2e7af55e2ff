"""``routeiq policy test | eval | input``: the operator's Rego tools, shaped like ``opa``.

* ``policy test [PATH...]`` runs every ``test_`` rule like ``opa test``: failures and a
  ``PASS: n/m`` summary (``-v``: every test), ``--format json`` for machines; exit 2 on
  any failure or error.
* ``policy eval`` evaluates an input document (``--input``), or the input document the
  server would build for an OpenAI request body (``--request``, with ``--header``).
  The decision query prints ``{"decision", "result"}`` (``--format pretty``: in words);
  any other ``--query`` prints OPA's result set. ``--fail`` / ``--fail-defined`` exit 1
  on an undefined / defined result, as in ``opa eval``. OPA's ``--explain`` (an
  evaluation trace) has no equivalent in the embedded engine and is refused.
* ``policy input --body FILE`` prints the input document a request produces.

``register(subparsers)`` adds the ``policy`` command to the ``routeiq`` parser; each
sub-command's function takes the parsed args and returns the exit status.
``render_explain(result)`` renders a ``PolicyResult`` in words.
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
from extproc.policy.request_input import RequestRefused, request_input
from extproc.policy.result import PolicyResult
from extproc.policy.spec import PolicySpec
from extproc.policy.testing import TestOutcome, run_tests

RULE = "-" * 80
DECISION_QUERY = "data.routeiq.decision"
DEFAULT_CONFIG = "config/routeiq.yaml"
# Top-level keys of an OpenAI request body that an input document never has.
_REQUEST_KEYS = ("messages", "input", "prompt")


class UsageError(Exception):
    """An operator mistake: one line on stderr, exit 2."""


def _default_data(dirs: list[str]) -> list[str]:
    """``<dir>/data`` for each policy directory that has one."""
    return [str(Path(d) / "data") for d in dirs if (Path(d) / "data").is_dir()]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _dump(doc: Any) -> None:
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")


def render_explain(result: PolicyResult) -> str:
    """A policy result in words (one line per fact): ``policy eval --format pretty``."""
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


# -- policy test --------------------------------------------------------------------------


def _test_json(outcomes: list[TestOutcome]) -> list[dict[str, Any]]:
    """``opa test --format json``'s fields: location, package, name, duration (ns)..."""
    out = []
    for o in outcomes:
        package, _, name = o.name.rpartition(".")
        entry: dict[str, Any] = {
            "location": {"file": o.file},
            "package": package,
            "name": name,
            "duration": int(o.seconds * 1e9),
        }
        if o.status == "FAIL":
            entry["fail"] = True
        elif o.status == "ERROR":
            entry["error"] = {"message": o.error}
        out.append(entry)
    return out


def _test_pretty(outcomes: list[TestOutcome], verbose: bool) -> None:
    current = None
    for o in outcomes:
        if not verbose and o.status == "PASS":
            continue
        if o.file != current:
            current = o.file
            print(f"{current}:")
        print(f"{o.name}: {o.status} ({o.seconds * 1e3:.2f}ms)")
        if o.error:
            print(f"  {o.error}")
    passed = sum(o.status == "PASS" for o in outcomes)
    if verbose or passed < len(outcomes):
        print(RULE)
    print(f"PASS: {passed}/{len(outcomes)}")
    if passed < len(outcomes):
        print(f"FAIL: {len(outcomes) - passed}/{len(outcomes)}")


def _cmd_test(args: argparse.Namespace) -> int:
    dirs = [*args.paths, *(args.dir or [])] or ["policies"]
    try:
        bundle = load_bundle(dirs, args.data or _default_data(dirs), Path.cwd())
        outcomes = run_tests(bundle, args.engine)
    except (ConfigError, ImportError) as exc:
        print(f"routeiq policy test: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    if not outcomes:
        print("routeiq policy test: no test_ rules found", file=sys.stderr)
        return 2
    if args.format == "json":
        _dump(_test_json(outcomes))
    else:
        _test_pretty(outcomes, args.verbose)
    return 0 if all(o.status == "PASS" for o in outcomes) else 2


# -- policy eval ---------------------------------------------------------------------------


def _load_input(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --input {path}: {exc.strerror or exc}") from None
    try:
        if path.endswith((".yaml", ".yml")):
            return yaml.safe_load(text)
        return orjson.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise UsageError(f"--input {path} is not JSON/YAML: {_one_line(str(exc))}") from None


def _check_input_document(doc: Any, path: str) -> None:
    """Refuse an OpenAI request body given where an input document is expected."""
    if (
        isinstance(doc, dict)
        and "routeiq" not in doc
        and "attributes" not in doc
        and "model" in doc
        and any(k in doc for k in _REQUEST_KEYS)
    ):
        raise UsageError(
            f"--input {path} is an OpenAI request body, not a policy input document: "
            f"use --request {path} (or see it with: routeiq policy input --body {path})"
        )


def _policy_spec(args: argparse.Namespace) -> tuple[PolicySpec, Path]:
    """The policy section to evaluate: the config's, or modules/data given directly."""
    config = args.config or (DEFAULT_CONFIG if args.request else None)
    if config:
        from extproc.config.snapshot import load_config  # CLI-only: not on the serve path

        loaded, _ = load_config(Path(config))
        return loaded.spec.policy, Path(config).resolve().parent
    dirs = list(args.policies or ["policies"])
    data = tuple(args.data or _default_data(dirs))
    return PolicySpec(engine="embedded", modules=tuple(dirs), data=data), Path.cwd()


async def _evaluate(spec: PolicySpec, base_dir: Path, doc: Any) -> PolicyResult:
    engine = build_policy_engine(spec, base_dir)
    try:
        return await engine.evaluate(doc)
    finally:
        await engine.aclose()


def _query(spec: PolicySpec, base_dir: Path, query: str, doc: Any) -> dict[str, Any]:
    """OPA's result set for any query: ``{"result": [{"expressions": [...]}]}``, or
    ``{}`` when undefined. Evaluated by regorus on the policy's modules and data."""
    from extproc.policy.embedded import _Interpreter, rego_error_text

    if not spec.modules:
        raise UsageError("--query needs the policy modules (spec.policy.modules)")
    bundle = load_bundle(spec.modules, spec.data, base_dir)
    engine = _Interpreter(bundle, query).engine
    try:
        engine.set_input_json(orjson.dumps(doc).decode())
        out: dict[str, Any] = orjson.loads(engine.eval_query_as_json(query))
    except RuntimeError as exc:
        raise UsageError(f"query {query!r}: {_one_line(rego_error_text(exc))}") from None
    return out


def _document(args: argparse.Namespace) -> Any:
    if args.request:
        return _request_document(args, args.request, "--request")
    doc = _load_input(args.input)
    _check_input_document(doc, args.input)
    return doc


def _request_document(args: argparse.Namespace, path: str, option: str) -> dict[str, Any]:
    from extproc.cli import parse_headers, read_body

    try:
        headers = parse_headers(args.header)
        body = read_body(path, option)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    config = Path(args.config or DEFAULT_CONFIG)
    try:
        return asyncio.run(request_input(config, body, headers, args.path))
    except RequestRefused as exc:
        raise UsageError(str(exc)) from None


def _exit_status(args: argparse.Namespace, defined: bool) -> int:
    if args.fail and not defined:
        return 1
    if args.fail_defined and defined:
        return 1
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    try:
        if args.explain is not None:
            raise UsageError(
                "--explain is OPA's evaluation trace, which the embedded engine cannot "
                "produce; use --format pretty for the decision in words"
            )
        spec, base_dir = _policy_spec(args)
        doc = _document(args)
        if args.query is not None and args.query != spec.query:
            found = _query(spec, base_dir, args.query, doc)
            _dump(found)
            return _exit_status(args, bool(found.get("result")))
        result = asyncio.run(_evaluate(spec, base_dir, doc))
    except UsageError as exc:
        print(f"routeiq policy eval: {exc}", file=sys.stderr)
        return 2
    except (ConfigError, OSError, ValueError) as exc:
        print(f"routeiq policy eval: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    if args.format == "pretty":
        print(render_explain(result))
    else:
        _dump({"decision": result.decision, "result": result.explain()})
    if result.engine_unavailable:
        return 3
    return _exit_status(args, result.decision is not None)


# -- policy input --------------------------------------------------------------------------


def _cmd_input(args: argparse.Namespace) -> int:
    try:
        _dump(_request_document(args, args.body, "--body"))
    except UsageError as exc:
        print(f"routeiq policy input: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"routeiq policy input: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    return 0


# -- parser --------------------------------------------------------------------------------


def _format_option(p: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    p.add_argument(
        "-f",
        "-o",
        "--format",
        choices=choices,
        default=choices[0],
        help=f"output format ({', '.join(choices)}; default {choices[0]})",
    )


def _request_options(p: argparse.ArgumentParser, config_help: str) -> None:
    p.add_argument("--header", action="append", default=[], help="'name: value', repeatable")
    p.add_argument("--path", default="/v1/chat/completions", help="request path")
    p.add_argument("--config", help=config_help)


def _register_test(sub: Any) -> None:
    test = sub.add_parser("test", help="run all test_ rules and report pass/fail (like opa test)")
    test.add_argument(
        "paths", nargs="*", metavar="PATH", help="policy directories or files (default: policies)"
    )
    test.add_argument("--dir", action="append", help="same as PATH (repeatable)")
    test.add_argument("-d", "--data", action="append", help="data documents (default: PATH/data)")
    test.add_argument("-v", "--verbose", action="store_true", help="list every test")
    _format_option(test, ("pretty", "json"))
    test.add_argument(
        "--engine",
        choices=("regorus", "opa"),
        default="regorus",
        help="regorus (embedded) or the real OPA engine (needs opa-golib bindings)",
    )
    test.set_defaults(func=_cmd_test)


def _register_eval(sub: Any) -> None:
    ev = sub.add_parser("eval", help="evaluate a query on an input document (like opa eval)")
    source = ev.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="input document (JSON or YAML; '-': stdin)")
    source.add_argument(
        "--request", help="OpenAI request body ('-': stdin): evaluate the input it produces"
    )
    _request_options(
        ev, f"RoutingConfig: its policy section (default with --request: {DEFAULT_CONFIG})"
    )
    ev.add_argument("--policies", action="append", help="policy directory (default: policies)")
    ev.add_argument("-d", "--data", action="append", help="data documents (default: DIR/data)")
    ev.add_argument("--query", help=f"any Rego query (default: the config's, {DECISION_QUERY})")
    _format_option(ev, ("json", "pretty"))
    ev.add_argument("--fail", action="store_true", help="exit 1 when the result is undefined")
    ev.add_argument("--fail-defined", action="store_true", help="exit 1 when the result is defined")
    ev.add_argument("--explain", nargs="?", const="full", help=argparse.SUPPRESS)
    ev.set_defaults(func=_cmd_eval)


def register(subparsers: Any) -> None:
    """Add ``routeiq policy {test,eval,input}`` to the ``routeiq`` sub-command parsers."""
    policy = subparsers.add_parser("policy", help="test and evaluate Rego policies (like opa)")
    sub = policy.add_subparsers(dest="policy_command", required=True)
    _register_test(sub)
    _register_eval(sub)
    inp = sub.add_parser("input", help="print the input document a request produces")
    inp.add_argument("--body", required=True, help="OpenAI request body ('-': stdin)")
    _request_options(inp, f"RoutingConfig (default: {DEFAULT_CONFIG})")
    inp.set_defaults(func=_cmd_input)
