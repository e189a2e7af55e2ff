"""Running Rego ``test_`` rules, like ``opa test``, with regorus or with real OPA.

A test is a rule whose name starts with ``test_``; it passes when it evaluates to
``true``, fails when it is false or undefined, and errors when evaluation raises.
Tests live in ``*_test.rego`` files next to the policies they test and see the
policies' data documents, so the same bundle is tested that will serve.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from extproc.policy.bundle import PolicyBundle
from extproc.policy.embedded import _Interpreter, rego_error_text

_PACKAGE = re.compile(r"^package\s+([A-Za-z_][\w.]*)", re.M)
_TEST_RULE = re.compile(r"^(test_\w+)\b", re.M)


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """One test rule's result; ``status`` is ``PASS``, ``FAIL`` or ``ERROR``."""

    __test__ = False  # not a pytest class

    file: str
    name: str  # data.<package>.<rule>
    status: str
    seconds: float
    error: str = ""


def discover(bundle: PolicyBundle) -> Iterator[tuple[str, str]]:
    """``(file, data.<package>.test_<name>)`` for every test rule, once each, in file order."""
    seen: set[str] = set()
    for path, source in bundle.modules + bundle.tests:
        package = _PACKAGE.search(source)
        if package is None:
            continue
        for match in _TEST_RULE.finditer(source):
            name = f"data.{package.group(1)}.{match.group(1)}"
            if name not in seen:
                seen.add(name)
                yield path, name


def _run(evaluate: Any, file: str, name: str) -> TestOutcome:
    start = time.perf_counter()
    try:
        value = evaluate(name)
    except Exception as exc:
        return TestOutcome(file, name, "ERROR", time.perf_counter() - start, rego_error_text(exc))
    status = "PASS" if value is True else "FAIL"
    return TestOutcome(file, name, status, time.perf_counter() - start)


def run_tests(bundle: PolicyBundle, engine: str = "regorus") -> list[TestOutcome]:
    """Evaluate every test rule of ``bundle`` with ``regorus`` or the real ``opa`` engine."""
    tests = list(discover(bundle))
    if engine == "opa":
        from opa_bindings import OpaEngine, OpaUndefinedError  # optional: tests/dev only

        opa = OpaEngine()
        try:
            for path, source in bundle.modules + bundle.tests:
                opa.add_policy(path, source)
            opa.add_data(dict(bundle.data))

            def opa_eval(name: str) -> Any:
                try:
                    return opa.eval_document(name.removeprefix("data."))
                except OpaUndefinedError:
                    return None

            return [_run(opa_eval, f, n) for f, n in tests]
        finally:
            opa.close()

    interpreter = _Interpreter(bundle, "data", with_tests=True)

    def regorus_eval(name: str) -> Any:
        out = orjson.loads(interpreter.engine.eval_query_as_json(name))
        results = out.get("result") or ()
        return results[0]["expressions"][0]["value"] if results else None

    return [_run(regorus_eval, f, n) for f, n in tests]
