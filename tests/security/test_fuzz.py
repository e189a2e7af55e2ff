"""Seeded fuzzing of the real request path: the ext_proc ``Processor`` with real
``ProcessingRequest`` protobufs, over a ``Runtime`` built from config/routeiq.yaml
(embedded Rego policies, the router with its embedding model, in-memory budgets).

Every input must keep the properties in tests/security/fuzz_drive.py: no exception
escapes a phase, every refusal is a bounded OpenAI-style JSON error with a 4xx status
(this config has no dependency that could fail, so no 5xx), no client ``x-routeiq-*``
header survives and no spoofed value is ever set, the route header only ever names a
configured cluster, and nothing below the path prefix passes undecided. The longer run,
including the path through a real Envoy, is benchmarks/fuzz.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from envoy.config.core.v3.base_pb2 import HeaderValue, HeaderValueOption
from envoy.service.ext_proc.v3.external_processor_pb2 import (
    HeaderMutation,
    ImmediateResponse,
    ProcessingResponse,
)
from envoy.type.v3.http_status_pb2 import HttpStatus

from extproc.config.settings import Settings
from extproc.runtime import Runtime
from tests.security.fuzz_cases import SPOOF, case_for
from tests.security.fuzz_drive import (
    Driver,
    Tally,
    check_mutation,
    check_no_bypass,
    check_refusal,
    check_removed,
    run_cases,
)

REPO = Path(__file__).resolve().parents[2]
SEED = 17
COUNT = 3000


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        config_path=REPO / "config" / "routeiq.yaml",
        decision_log="file",
        decision_log_path=tmp_path / "decisions.jsonl",
    )
    runtime = Runtime.create(settings)
    yield runtime
    await runtime.close()


def _report(tally: Tally) -> str:
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items()))
    return (
        f"{tally.cases} inputs (seed {SEED}); {outcomes}; {tally.exceptions} exceptions; "
        f"{len(tally.violations)} violations; max per input: {tally.max_s * 1000:.1f} ms wall "
        f"({tally.slowest}), {tally.max_cpu_s * 1000:.1f} ms loop CPU ({tally.most_cpu})"
    )


async def test_fuzz_request_path(runtime: Runtime) -> None:
    tally = await run_cases(Driver(runtime), (case_for(SEED, i) for i in range(COUNT)))
    print("\nfuzz:", _report(tally))
    assert tally.cases == COUNT
    assert not tally.violations, "\n".join(tally.violations[:25])
    # The inputs reached every stage, not only the JSON parser.
    statuses = {k for k in tally.outcomes if k.startswith("refused")}
    assert tally.outcomes["routed"] > COUNT // 10, tally.outcomes
    assert tally.outcomes["passthrough"] > 0 and len(statuses) >= 5, tally.outcomes


# -- the checks themselves catch what they are meant to ------------------------------------


def _mutation(*pairs: tuple[str, bytes], remove: tuple[str, ...] = ()) -> HeaderMutation:
    return HeaderMutation(
        set_headers=[HeaderValueOption(header=HeaderValue(key=k, raw_value=v)) for k, v in pairs],
        remove_headers=list(remove),
    )


def test_checks_flag_spoofing_and_unconfigured_routes() -> None:
    clusters = frozenset({"demo_eco"})
    route = "x-routeiq-cluster"
    assert check_mutation(_mutation((route, b"demo_eco")), clusters, route) == []
    assert check_mutation(_mutation((route, b"elsewhere")), clusters, route)
    assert check_mutation(_mutation(("x-routeiq-category", SPOOF.encode())), clusters, route)
    names = {"x-routeiq-cluster", "x-routeiq-tier"}
    assert check_removed(_mutation(remove=("X-RouteIQ-Cluster", "x-routeiq-tier")), names) == []
    assert check_removed(_mutation(remove=("x-routeiq-cluster",)), names)


def _refusal(
    status: int, body: bytes, content_type: bytes = b"application/json"
) -> ProcessingResponse:
    return ProcessingResponse(
        immediate_response=ImmediateResponse(
            status=HttpStatus(code=status),  # type: ignore[arg-type,unused-ignore]
            headers=_mutation(("content-type", content_type)),
            body=body,
        )
    )


def test_checks_flag_bad_refusals_and_bypasses() -> None:
    good = b'{"error":{"message":"no","type":"invalid_request_error"}}'
    assert check_refusal(_refusal(404, good)) == (404, [])
    assert check_refusal(_refusal(503, good))[1]
    assert check_refusal(_refusal(400, b"not json"))[1]
    assert check_refusal(_refusal(400, good, b"text/plain"))[1]
    assert check_refusal(_refusal(400, good[:-2] + b',"x":"' + b"a" * 5000 + b'"}}'))[1]
    case = case_for(SEED, 0)
    for path, bypass in (
        ("/v1/%63hat/completions", True),
        ("/x/..%2fv1//Chat/completions;p", True),
        ("\\v1\\embeddings", True),
        ("/v2/chat/completions", False),
        ("/v1/models", False),
    ):
        method = "GET" if path.endswith("models") else "POST"
        probe = dataclasses.replace(case, path=path, method=method)
        assert bool(check_no_bypass(probe, "/v1")) is bypass, path
