"""Policy evaluation cost: embedded engines vs real OPA, the remote round trip, input and detectors.

Run from the repository root::

    .venv/bin/python benchmarks/policy_eval.py [--n 5000] [--remote-n 1000]

Everything runs in the same process and run, on the shipped policies (policies/), with
one realistic request (chat body of ~1.6 KB, credentials in headers). It prints:

- per-evaluation p50/p99 for regorus' VM (what RouteIQ serves with), regorus'
  interpreter, the real OPA Go engine in process (opa-golib bindings) and regopy;
- agreement of each embedded engine with real OPA over the 240-input differential
  corpus (tests/policy/corpus.py);
- the remote engine's round trip to the OPA fixture server (real OPA behind the REST
  Data API, loopback, keep-alive) through opa-python-client's AsyncOpaClient;
- the cost of building the input document and of the content detectors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import orjson  # noqa: E402

from extproc.api.identity import IdentitySpec, identify  # noqa: E402
from extproc.api.openai import Endpoint, parse_request  # noqa: E402
from extproc.policy import Detectors, PolicySpec, build_input, build_policy_engine  # noqa: E402
from extproc.policy.bundle import load_bundle  # noqa: E402
from extproc.policy.embedded import EmbeddedEngine  # noqa: E402
from tests.fixtures.opa_server import OpaServer  # noqa: E402
from tests.policy.corpus import DATA_VARIANTS, inputs, with_data  # noqa: E402

QUERY = "data.routeiq.decision"
SYSTEM = "You are a careful assistant for the support team. Answer briefly. " * 6
USER = (
    "Our customer wrote in about an invoice that does not match the order. Summarise the "
    "thread below and propose a reply; keep it polite and under 120 words.\n" + "lorem ipsum " * 90
)


def _request() -> tuple[Any, Any, bytes]:
    body = {
        "model": "auto",
        "max_tokens": 400,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
    }
    raw = orjson.dumps(body)
    headers = {
        "authorization": "Bearer sk-proj-" + "x" * 40,
        "x-team": "support",
        "x-user-id": "u-42",
        "content-type": "application/json",
        "x-data-classification": "confidential",
    }
    request = parse_request(Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", headers, raw)
    return request, identify(headers, IdentitySpec(), None), raw


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    ordered = sorted(samples_ns)
    return ordered[len(ordered) // 2] / 1e3, ordered[int(len(ordered) * 0.99)] / 1e3


def _time(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(min(200, n)):
        fn()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        samples.append(clock() - t0)
    return _percentiles(samples)


def _regopy_runner(bundle: Any) -> Callable[[dict[str, Any]], Any] | None:
    try:
        import regopy
    except ImportError:
        return None
    interp = regopy.Interpreter()
    for path, source in bundle.modules:
        interp.add_module(path, source)
    interp.add_data_json(bundle.data_json)

    def run(doc: dict[str, Any]) -> Any:
        interp.set_input_term(orjson.dumps(doc).decode())
        out = interp.query(QUERY)  # regopy parses its output itself
        return out.results[0].expressions[0] if out.results else None

    return run


def _agreement(n_per_variant: int) -> dict[str, str]:
    from opa_bindings import OpaEngine

    from extproc.policy.embedded import build_embedded
    from extproc.policy.input import probe_inputs

    base = load_bundle(["policies"], ["policies/data"], REPO)
    same = {"regorus vm": 0, "regorus interpreter": 0, "regopy": 0}
    total = 0
    for v, overrides in enumerate(DATA_VARIANTS):
        bundle = with_data(base, overrides)
        opa = OpaEngine()
        for path, source in bundle.modules:
            opa.add_policy(path, source)
        opa.add_data(dict(bundle.data))
        engines = {
            f"regorus {kind}": build_embedded(
                bundle,
                QUERY,
                probe_inputs(bundle.data),
                deny_status=403,
                dry_run=False,
                fail_open=False,
                evaluator=kind,
            )
            for kind in ("vm", "interpreter")
        }
        regopy_run = _regopy_runner(bundle)
        for doc in inputs(n_per_variant, seed=1000 + v):
            want = opa.eval_document(QUERY.removeprefix("data."), doc)
            total += 1
            for name, engine in engines.items():
                same[name] += engine.decide(doc).decision == want
            if regopy_run is not None:
                # regopy may emit output it cannot parse itself (ValueError)
                with contextlib.suppress(ValueError, RuntimeError):
                    same["regopy"] += regopy_run(doc) == want
        opa.close()
        for engine in engines.values():
            engine.close()
    return {name: f"{count}/{total}" for name, count in same.items()}


async def _remote(url: str, doc: dict[str, Any], n: int) -> tuple[float, float]:
    spec = PolicySpec.model_validate({"engine": "opa", "opa": {"url": url, "timeoutMs": 1000}})
    engine = build_policy_engine(spec, REPO)
    try:
        for _ in range(50):
            await engine.evaluate(doc)
        samples: list[int] = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            result = await engine.evaluate(doc)
            samples.append(time.perf_counter_ns() - t0)
            assert not result.engine_unavailable, result.reason
        return _percentiles(samples)
    finally:
        await engine.aclose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--remote-n", type=int, default=1000)
    args = parser.parse_args()

    request, caller, _ = _request()
    detectors = Detectors()
    findings = detectors.scan_body(request.body)

    def make_doc() -> dict[str, Any]:
        return build_input(
            request,
            caller,
            host="gw",
            profile="auto",
            classification=None,
            limits=None,
            findings=findings,
        )

    doc = make_doc()
    rows: list[tuple[str, float, float]] = []

    spec = PolicySpec(engine="embedded", modules=("policies",), data=("policies/data",))
    vm = build_policy_engine(spec, REPO)
    interp = build_policy_engine(spec.model_copy(update={"evaluator": "interpreter"}), REPO)
    assert isinstance(vm, EmbeddedEngine) and isinstance(interp, EmbeddedEngine)
    assert vm.mode == "vm", vm.vm_fallback
    rows.append(("regorus VM (served), decide()", *_time(lambda: vm.decide(doc), args.n)))
    rows.append(("regorus interpreter, decide()", *_time(lambda: interp.decide(doc), args.n)))

    from opa_bindings import OpaEngine

    bundle = load_bundle(["policies"], ["policies/data"], REPO)
    opa = OpaEngine()
    for path, source in bundle.modules:
        opa.add_policy(path, source)
    opa.add_data(dict(bundle.data))
    rows.append(
        (
            "real OPA (Go, in process)",
            *_time(lambda: opa.eval_document("routeiq.decision", doc), args.n // 2),
        )
    )
    regopy_run = _regopy_runner(bundle)
    if regopy_run is not None:
        # regopy's sprintf("%s") quotes strings and then emits JSON it cannot parse, which
        # the confidential note triggers: time it on the same request without that path.
        plain = json.loads(orjson.dumps(doc))
        plain["attributes"]["request"]["http"]["headers"].pop("x-data-classification")
        plain["routeiq"]["findings"] = {}
        regopy_run(plain)
        rows.append(
            ("regopy (rego-cpp), query(), non-confidential", *_time(lambda: regopy_run(plain), 500))
        )

    server = OpaServer.start()
    try:
        rows.append(
            (
                "remote OPA round trip (fixture, HTTP)",
                *asyncio.run(_remote(server.url, doc, args.remote_n)),
            )
        )
    finally:
        server.stop()

    rows.append(
        (
            "build_input()",
            *_time(
                make_doc,
                args.n,
            ),
        )
    )
    rows.append(
        (
            "detectors, whole prompt (~1.6 KB)",
            *_time(lambda: detectors.scan_body(request.body), args.n),
        )
    )
    short = {"messages": [{"role": "user", "content": "What is the capital of France?"}]}
    rows.append(("detectors, short prompt", *_time(lambda: detectors.scan_body(short), args.n)))

    print(f"policy evaluation, shipped policies, input {len(orjson.dumps(doc))} bytes JSON")
    print(f"{'what':48} {'p50 us':>9} {'p99 us':>9}")
    for name, p50, p99 in rows:
        print(f"{name:48} {p50:9.1f} {p99:9.1f}")
    ratio = statistics.median([rows[2][1]]) / rows[0][1]
    print(f"regorus VM is {ratio:.1f}x faster than in-process OPA at p50")
    print("agreement with real OPA on the differential corpus:", json.dumps(_agreement(60)))
    vm.close()
    interp.close()
    opa.close()


if __name__ == "__main__":
    main()
