"""The embedded Rego engine: Microsoft regorus (PyPI ``celine-regorus``), in process.

Why this shape (measurements in ``docs/policy.md``):

- **Compiled program first.** regorus has a tree-walking interpreter (``Engine``) and a
  compiler to a register VM (``Program``/``Rvm``), about 3x faster on the shipped
  policies. At build time both run a probe input; the VM serves only if it compiles
  the bundle and agrees with the interpreter, otherwise the interpreter serves (a
  policy using a construct the VM lacks still works).
- **JSON in, JSON out.** regorus' Python-object conversion turns ``False`` into ``0``
  (bool is an int in Python) and ints into floats, which silently changes decisions;
  inputs and results cross the boundary as JSON text only.
- **Thread affinity.** Every regorus object is "unsendable": used or even *dropped* on
  a thread other than its creator, it panics or leaks with an error. Each thread
  therefore builds its own evaluator from immutable sources (the serialized program
  bytes, module texts, data JSON) on first use, and keeps it in that thread's own
  storage, where only that thread ever drops it (see ``_ThreadSlots``). The server
  evaluates inline on its event-loop thread: no thread hop, no lock. A failed build
  carries its errors as text, never inside an exception that references a regorus
  object: the watcher builds in a worker thread and frees the exception on the
  loop's thread, which would drop the object there.
- **Errors stay in the failure mode.** Rego runtime errors, unencodable inputs and
  Rust panics (pyo3's ``PanicException``, a ``BaseException``) become the
  ``failureMode`` result; after a panic the thread's evaluator is rebuilt.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import regorus
from regorus.regorus import Program, Rvm

from extproc.policy.bundle import PolicyBundle, PolicyConfigError
from extproc.policy.judge import Judge, UndefinedDecision
from extproc.policy.result import DecisionError, PolicyResult, parse_decision

_UNDEFINED = "<undefined>"  # what the regorus VM returns for an undefined document


def rego_error_text(exc: BaseException) -> str:
    """A regorus error without its Rust backtrace: ``--> file:line:col``, the line, the error."""
    text = str(exc).split("Stack backtrace:", 1)[0].strip()
    return text or type(exc).__name__


def is_panic(exc: BaseException) -> bool:
    """A Rust panic inside regorus: pyo3's ``PanicException``, a ``BaseException`` that
    ``except Exception`` does not catch."""
    return type(exc).__name__ == "PanicException"


class _Evaluator(Protocol):
    def evaluate_text(self, input_json: str) -> str:
        """The engine's answer as JSON text."""
        ...

    def decode(self, text: str) -> Any:
        """The decision value in that text; raises ``UndefinedDecision`` for none."""
        ...

    def evaluate(self, input_json: str) -> Any: ...


def _load_engine(engine: Any, modules: tuple[tuple[str, str], ...], data_json: str) -> str:
    """Load sources into ``engine``; the error text, or "" when all loaded.

    Errors come back as text, not exceptions: an exception's traceback would keep the
    engine alive, and whichever thread frees the exception would drop it there.
    """
    for path, source in modules:
        try:
            engine.add_policy(path, source)
        except RuntimeError as exc:
            return f"Rego error in {path}: {rego_error_text(exc)}"
    try:
        engine.add_data_json(data_json)
    except RuntimeError as exc:
        return f"policy data rejected: {rego_error_text(exc)}"
    return ""


class _Interpreter:
    """regorus' tree-walking interpreter; serves policies the VM cannot compile."""

    def __init__(self, bundle: PolicyBundle, query: str, *, with_tests: bool = False) -> None:
        engine = regorus.Engine()
        modules = bundle.modules + (bundle.tests if with_tests else ())
        error = _load_engine(engine, modules, bundle.data_json)
        if error:
            del engine  # dropped here, on the thread that made it
            raise PolicyConfigError(error)
        self.engine = engine
        self._query = query

    def evaluate_text(self, input_json: str) -> str:
        self.engine.set_input_json(input_json)
        return str(self.engine.eval_query_as_json(self._query))

    def decode(self, text: str) -> Any:
        results = orjson.loads(text).get("result") or ()
        if not results:
            raise UndefinedDecision(self._query)
        return results[0]["expressions"][0]["value"]

    def evaluate(self, input_json: str) -> Any:
        return self.decode(self.evaluate_text(input_json))


class _Vm:
    """A regorus VM loaded with the serialized program (bytes can cross threads)."""

    def __init__(self, program: bytes, data_json: str, entry: str) -> None:
        compiled, _ = Program.deserialize_binary(program)
        self._rvm = Rvm()
        self._rvm.load_program(compiled)
        self._rvm.set_data_json(data_json)
        self._entry = entry

    def evaluate_text(self, input_json: str) -> str:
        self._rvm.set_input_json(input_json)
        return str(self._rvm.execute_entry_point(self._entry))

    def decode(self, text: str) -> Any:
        value = orjson.loads(text)
        if value == _UNDEFINED:
            raise UndefinedDecision(self._entry)
        return value

    def evaluate(self, input_json: str) -> Any:
        return self.decode(self.evaluate_text(input_json))


def compile_program(bundle: PolicyBundle, entry: str) -> bytes:
    program = Program.compile_from_modules(bundle.data_json, list(bundle.modules), [entry])
    return bytes(program.serialize_binary())


@dataclass(slots=True)
class _Liveness:
    """Shared by an engine and its per-thread evaluators: tells threads when to drop them."""

    closed: bool = False

    def close(self) -> None:
        self.closed = True


class _ThreadSlots(threading.local):
    """Each thread's own evaluators, keyed by engine; dropped only by that thread.

    This is the one piece of process-level state in the policy package, and it is
    per-thread by construction: a ``threading.local`` owned by an engine would drop
    other threads' evaluators on whichever thread frees the engine (a regorus panic).
    Entries of closed or freed engines are swept by their own thread the next time it
    builds an evaluator, or at thread exit.
    """

    def __init__(self) -> None:
        self.slots: dict[object, tuple[_Liveness, _Evaluator]] = {}

    def sweep(self) -> None:
        dead = [key for key, (live, _) in self.slots.items() if live.closed]
        for key in dead:
            del self.slots[key]


_THREAD_SLOTS = _ThreadSlots()


@dataclass(slots=True)
class _Source:
    """Immutable recipe for an evaluator: safe to share between threads."""

    bundle: PolicyBundle
    query: str
    program: bytes | None
    data_json: str = field(init=False)

    def __post_init__(self) -> None:
        self.data_json = self.bundle.data_json

    def build(self) -> _Evaluator:
        if self.program is not None:
            return _Vm(self.program, self.data_json, self.query)
        return _Interpreter(self.bundle, self.query)


class EmbeddedEngine:
    """Rego evaluated in process by regorus; see the module docstring for the why.

    ``evaluate`` is a coroutine for the protocol's sake but never awaits: it runs
    inline on the caller's thread. ``mode`` is ``vm`` or ``interpreter``;
    ``vm_fallback`` says why the VM was not used (empty when it is).
    """

    name = "embedded"

    def __init__(
        self,
        source: _Source,
        *,
        deny_status: int,
        dry_run: bool,
        fail_open: bool,
        vm_fallback: str = "",
    ) -> None:
        self._source = source
        self._judge = Judge(
            self.name, deny_status=deny_status, dry_run=dry_run, fail_open=fail_open
        )
        self._key = object()
        self._live = _Liveness()
        self.vm_fallback = vm_fallback
        weakref.finalize(self, self._live.close)

    @property
    def mode(self) -> str:
        return "vm" if self._source.program is not None else "interpreter"

    @property
    def ready(self) -> bool:
        return not self._live.closed

    def warm(self) -> None:
        """Build this thread's evaluator now, so the first request does not pay for it."""
        self._evaluator()

    def _evaluator(self) -> _Evaluator:
        slots = _THREAD_SLOTS.slots
        entry = slots.get(self._key)
        if entry is not None:
            return entry[1]
        _THREAD_SLOTS.sweep()
        evaluator = self._source.build()
        slots[self._key] = (self._live, evaluator)
        return evaluator

    def decide(self, input_doc: Mapping[str, Any]) -> PolicyResult:
        """Synchronous evaluation on the calling thread (what ``evaluate`` runs)."""
        judge, start = self._judge, time.perf_counter()
        try:
            evaluator = self._evaluator()
            text = evaluator.evaluate_text(orjson.dumps(input_doc).decode())
            return judge.answered_text(text, evaluator.decode, start)
        except UndefinedDecision:
            return judge.undefined(start)
        except Exception as exc:  # a Rego runtime error, an unencodable input
            return judge.failed(f"evaluation error ({type(exc).__name__})", start)
        except BaseException as exc:
            if not is_panic(exc):
                raise  # KeyboardInterrupt, SystemExit, cancellation: not the engine's
            # A panic may leave the evaluator half-way through: this thread builds anew.
            _THREAD_SLOTS.slots.pop(self._key, None)
            return judge.failed(f"evaluation error ({type(exc).__name__})", start)

    async def evaluate(self, input_doc: Mapping[str, Any]) -> PolicyResult:
        return self.decide(input_doc)

    def close(self) -> None:
        """Mark closed; this thread's evaluator goes now, other threads' on their next build."""
        self._live.close()
        _THREAD_SLOTS.sweep()

    async def aclose(self) -> None:
        self.close()


def _check_vm(
    bundle: PolicyBundle, query: str, probes: list[str], expected: list[Any]
) -> tuple[bytes | None, str]:
    """The compiled program if the VM agrees with the interpreter on every probe."""
    try:
        program = compile_program(bundle, query)
        vm = _Vm(program, bundle.data_json, query)
        for probe, want in zip(probes, expected, strict=True):
            try:
                got: Any = vm.evaluate(probe)
            except UndefinedDecision:
                got = UndefinedDecision
            if got != want:
                return None, "the VM disagreed with the interpreter on a probe input"
    except (RuntimeError, ValueError) as exc:
        return None, f"the VM cannot compile this bundle: {rego_error_text(exc)}"
    except BaseException as exc:
        if not is_panic(exc):
            raise
        return None, f"the VM panicked on a probe input: {rego_error_text(exc)}"
    return program, ""


def _probe_answers(
    interpreter: _Interpreter, texts: list[str], query: str, deny_status: int
) -> list[Any] | str:
    """The interpreter's answer to each probe, or the text of why the bundle cannot
    serve (text, not an exception, for the reason given in ``_load_engine``)."""
    expected: list[Any] = []
    for i, text in enumerate(texts):
        try:
            value = interpreter.evaluate(text)
        except UndefinedDecision:
            if i == 0:
                return (
                    f"the policy query '{query}' is undefined for a sample request: check the "
                    "package and rule names, or give the rule a default"
                )
            expected.append(UndefinedDecision)
            continue
        except RuntimeError as exc:
            return f"policy evaluation failed: {rego_error_text(exc)}"
        except BaseException as exc:
            if not is_panic(exc):
                raise
            return f"policy evaluation failed: the engine panicked ({rego_error_text(exc)})"
        try:
            parse_decision(value, engine="embedded", deny_status=deny_status)
        except DecisionError as exc:
            return f"'{query}' does not return a valid decision: {exc}"
        expected.append(value)
    return expected


def build_embedded(
    bundle: PolicyBundle,
    query: str,
    probes: list[dict[str, Any]],
    *,
    deny_status: int,
    dry_run: bool,
    fail_open: bool,
    evaluator: str = "auto",
) -> EmbeddedEngine:
    """Compile ``bundle``, test it on the ``probes``, choose VM or interpreter.

    ``evaluator``: ``auto`` uses the VM when it agrees with the interpreter on every
    probe, ``vm`` requires it (ConfigError otherwise), ``interpreter`` never uses it.
    Raises ``PolicyConfigError`` when a module does not compile (file and line in the
    message), the query is undefined on the first probe, or a decision is malformed.
    """
    texts = [orjson.dumps(p).decode() for p in probes]
    interpreter = _Interpreter(bundle, query)
    expected = _probe_answers(interpreter, texts, query, deny_status)
    del interpreter  # dropped on this (the building) thread, whatever happens next
    if isinstance(expected, str):
        raise PolicyConfigError(expected)

    program: bytes | None = None
    fallback = "evaluator: interpreter"
    if evaluator != "interpreter":
        program, fallback = _check_vm(bundle, query, texts, expected)
        if program is None and evaluator == "vm":
            raise PolicyConfigError(f"evaluator 'vm' requested but {fallback}")
    return EmbeddedEngine(
        _Source(bundle, query, program),
        deny_status=deny_status,
        dry_run=dry_run,
        fail_open=fail_open,
        vm_fallback=fallback,
    )
