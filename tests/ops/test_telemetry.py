"""Spans and metrics of decisions, captured with the SDK's in-memory exporters."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from extproc.decision import Decision, Outcome
from extproc.routing.router import Classification
from extproc.runtime import Runtime
from extproc.state.types import StateStats
from extproc.telemetry import merge_exposition
from tests.ops.conftest import Captured, chat

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def traceparent(sampled: bool = True) -> dict[str, str]:
    return {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{'01' if sampled else '00'}"}


async def test_decision_span_has_genai_attributes_and_caller_trace(
    runtime: Runtime, captured: Captured
) -> None:
    request = chat("o3", headers=traceparent(), max_tokens=64, stream=True)
    decision = await runtime.decide(request)
    before = time.time_ns()
    captured.telemetry.record_decision(
        decision, request, 0.002, request.headers, snapshot=runtime.snapshot
    )
    (span,) = captured.spans.get_finished_spans()
    assert span.name == "routeiq.decide chat"
    assert span.context.trace_id == int(TRACE_ID, 16)
    assert span.parent is not None and span.parent.span_id == int(PARENT_ID, 16)
    assert span.parent.is_remote
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "o3-2025-04-16"  # what the backend is asked for
    assert attrs["routeiq.requested_model"] == "o3"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["routeiq.backend"] == "premium"
    assert attrs["routeiq.tier"] == "premium"
    assert attrs["routeiq.outcome"] == "routed"
    assert attrs["routeiq.config_version"] == runtime.snapshot.version
    assert attrs["routeiq.policy.outcome"] == "allow"
    assert attrs["routeiq.policy.engine"] == "embedded"
    # The span covers the decision: it starts elapsed_s before it ends.
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == pytest.approx(2_000_000, abs=2)
    assert before <= span.end_time <= time.time_ns()


async def test_classified_request_carries_routing_attributes(
    runtime: Runtime, captured: Captured
) -> None:
    request = chat("auto", "Write a Python function that merges two sorted lists.")
    decision = await runtime.decide(request)
    captured.telemetry.record_decision(decision, request, 0.01, {}, snapshot=runtime.snapshot)
    (span,) = captured.spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert span.parent is None  # no traceparent: a root span
    assert attrs["routeiq.profile"] == "auto"
    assert attrs["routeiq.category"] == decision.category
    assert attrs["routeiq.strategy"] == decision.strategy
    assert isinstance(attrs["routeiq.score"], float)
    (embed,) = captured.points("routeiq.embedding.duration")
    assert embed.count == 1 and embed.sum > 0
    (policy,) = captured.points("routeiq.policy.duration")
    assert dict(policy.attributes) == {"engine": "embedded", "outcome": "allow"}


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v1/embeddings", "embeddings"),
        ("/v1/completions", "text_completion"),
        ("/v1/responses", "chat"),
    ],
)
async def test_operation_name_follows_the_endpoint(
    runtime: Runtime, captured: Captured, path: str, operation: str
) -> None:
    request = chat("gpt-4o-mini", path=path)
    decision = await runtime.decide(request)
    captured.telemetry.record_decision(decision, request, 0.001, {})
    (span,) = captured.spans.get_finished_spans()
    assert span.name == f"routeiq.decide {operation}"
    assert dict(span.attributes or {})["routeiq.endpoint"] == path.removeprefix("/v1/")


async def test_denial_is_counted_and_spanned(runtime: Runtime, captured: Captured) -> None:
    request = chat("no-such-model")
    decision = await runtime.decide(request)
    captured.telemetry.record_decision(decision, request, 0.0005, {})
    (span,) = captured.spans.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert attrs["routeiq.outcome"] == "denied"
    assert attrs["error.type"] == "model_not_found"
    assert attrs["routeiq.error.status"] == 404
    (denial,) = captured.points("routeiq.denials")
    assert dict(denial.attributes) == {"reason": "model_not_found"} and denial.value == 1
    (count,) = captured.points("routeiq.decisions")
    assert dict(count.attributes) == {"backend": "none", "profile": "explicit", "outcome": "denied"}


async def test_sampling_obeys_parent_flag_and_ratio(runtime: Runtime) -> None:
    request = chat("gpt-4o")
    decision = await runtime.decide(request)
    never = Captured(sample_ratio=0.0)
    try:
        assert never.telemetry.record_decision(decision, request, 0.001, {}).span_context is None
        # A sampled caller wins over the local ratio (parent-based sampler).
        rec = never.telemetry.record_decision(decision, request, 0.001, traceparent(True))
        assert rec.span_context is not None
        assert len(never.spans.get_finished_spans()) == 1
        (count,) = never.points("routeiq.decisions")
        assert count.value == 2  # metrics do not depend on sampling
    finally:
        never.telemetry.shutdown()
    always = Captured(sample_ratio=1.0)
    try:
        always.telemetry.record_decision(decision, request, 0.001, traceparent(False))
        assert always.spans.get_finished_spans() == ()
    finally:
        always.telemetry.shutdown()


async def test_without_span_processor_no_tracer_exists(runtime: Runtime) -> None:
    untraced = Captured(traced=False)
    try:
        assert untraced.telemetry.tracer_provider is None
        request = chat("gpt-4o", headers=traceparent())
        decision = await runtime.decide(request)
        rec = untraced.telemetry.record_decision(decision, request, 0.001, request.headers)
        assert rec.span_context is None
        untraced.telemetry.record_usage(rec, {"prompt_tokens": 3, "completion_tokens": 4})
        assert {p.attributes["gen_ai.token.type"]: p.sum for p in untraced.points(
            "gen_ai.client.token.usage")} == {"input": 3, "output": 4}  # fmt: skip
    finally:
        untraced.telemetry.shutdown()


async def test_usage_span_and_token_histogram(runtime: Runtime, captured: Captured) -> None:
    request = chat("gpt4", headers=traceparent())
    decision = await runtime.decide(request)
    rec = captured.telemetry.record_decision(
        decision, request, 0.001, request.headers, snapshot=runtime.snapshot
    )
    captured.telemetry.record_usage(
        rec,
        {
            "prompt_tokens": 12,
            "completion_tokens": 30,
            "completion_tokens_details": {"reasoning_tokens": 5},
        },
        status=200,
    )
    decide_span, upstream = captured.spans.get_finished_spans()
    assert upstream.name == "routeiq.upstream chat"
    assert upstream.parent is not None
    assert upstream.parent.span_id == decide_span.context.span_id
    assert upstream.context.trace_id == int(TRACE_ID, 16)
    assert upstream.start_time == decide_span.end_time
    attrs = dict(upstream.attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 5
    assert attrs["http.response.status_code"] == 200
    points = {p.attributes["gen_ai.token.type"]: p for p in captured.points(
        "gen_ai.client.token.usage")}  # fmt: skip
    assert points["input"].sum == 12 and points["output"].sum == 30
    assert dict(points["input"].attributes) == {
        "gen_ai.token.type": "input",
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
    }


def test_event_counters(captured: Captured) -> None:
    t = captured.telemetry
    t.record_reload(True, "v2")
    t.record_reload(False)
    t.record_reload(False)
    t.record_error("decide")
    t.watch_state(lambda: StateStats(outages=2, fallback_calls=5, degraded=True))
    t.watch_dropped(lambda: 7)
    reloads = {p.attributes["result"]: p.value for p in captured.points("routeiq.config.reloads")}
    assert reloads == {"success": 1, "failure": 2}
    assert [p.value for p in captured.points("routeiq.errors")] == [1]
    assert [p.value for p in captured.points("routeiq.state.outages")] == [2]
    assert [p.value for p in captured.points("routeiq.state.fallback_calls")] == [5]
    assert [p.value for p in captured.points("routeiq.state.degraded")] == [1]
    assert [dict(p.attributes) for p in captured.points("routeiq.config.info")] == [
        {"version": "v2"}
    ]
    assert [p.value for p in captured.points("routeiq.decision_log.dropped")] == [7]


async def test_prometheus_text_parses_and_merges(runtime: Runtime, captured: Captured) -> None:
    request = chat("gpt-4o")
    decision = await runtime.decide(request)
    for _ in range(3):
        captured.telemetry.record_decision(decision, request, 0.0003, {})
    text = captured.telemetry.prometheus_text().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["routeiq_decisions"].type == "counter"
    (sample,) = families["routeiq_decisions"].samples
    assert sample.name == "routeiq_decisions_total" and sample.value == 3
    assert sample.labels == {"backend": "premium", "profile": "explicit", "outcome": "routed"}
    hist = families["routeiq_decision_duration_seconds"]
    assert hist.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets["0.00025"] == 0 and buckets["0.0005"] == 3 and buckets["+Inf"] == 3

    merged = merge_exposition([text, text])
    families = {f.name: f for f in text_string_to_metric_families(merged.decode())}
    (sample,) = families["routeiq_decisions"].samples
    assert sample.value == 6
    counts = [s.value for s in families["routeiq_decision_duration_seconds"].samples
              if s.name.endswith("_count")]  # fmt: skip
    assert counts == [6]


def test_failed_open_span_is_an_error(captured: Captured) -> None:
    decision = Decision(
        id="x", outcome=Outcome.FAILED_OPEN, config_version="v", requested_model="m",
        backend="eco", reasons=("internal error, failed open",),
    )  # fmt: skip
    captured.telemetry.record_decision(decision, None, 0.001)
    (span,) = captured.spans.get_finished_spans()
    assert span.status.status_code.name == "ERROR"
    assert span.name == "routeiq.decide chat"


def test_experiment_arms_and_shadow_disagreements_are_counted(captured: Captured) -> None:
    def decision(variant: str, disagrees: bool) -> Decision:
        shadow = Classification(
            category="chat" if disagrees else "coding",
            tier="eco",
            score=0.1,
            scores={},
            strategy="knn",
            variant=None,
            signals={},
        )
        return Decision(
            id="d",
            outcome=Outcome.ROUTED,
            config_version="v",
            requested_model="auto",
            backend="eco",
            classification=Classification(
                category="coding",
                tier="eco",
                score=0.2,
                scores={},
                strategy=variant,
                variant=variant,
                signals={},
                shadow=shadow,
                embed_ms=1.0,
            ),
        )

    t = captured.telemetry
    t.record_decision(decision("centroid", True), None, 0.001)
    t.record_decision(decision("centroid", False), None, 0.001)
    t.record_decision(decision("mlp", True), None, 0.001)
    arms = {p.attributes["variant"]: p.value for p in captured.points("routeiq.classifications")}
    assert arms == {"centroid": 2, "mlp": 1}
    shadow = {
        p.attributes["strategy"]: p.value for p in captured.points("routeiq.shadow.disagreements")
    }
    assert shadow == {"centroid": 1, "mlp": 1}
