"""The analysis pool: bounded, time-boxed, and never in the way of other streams."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.decide import decide
from extproc.decision import Outcome
from extproc.pipeline.offload import OffloadBusy, OffloadTimeout, ThreadOffload

REPO = Path(__file__).resolve().parents[2]


async def test_a_job_runs_on_another_thread_and_returns_its_result() -> None:
    pool = ThreadOffload(threads=1, timeout_s=5, max_pending=2)
    try:
        name = await pool.run(lambda: threading.current_thread().name)
        assert name.startswith("routeiq-offload")
        assert pool.pending == 0
    finally:
        pool.close()


async def test_saturated_pool_refuses_at_once_and_frees_its_slot_when_the_job_ends() -> None:
    pool = ThreadOffload(threads=1, timeout_s=5, max_pending=1)
    gate = threading.Event()
    try:
        first = asyncio.ensure_future(pool.run(gate.wait))
        await asyncio.sleep(0)
        assert pool.pending == 1
        with pytest.raises(OffloadBusy):
            await pool.run(lambda: None)
        gate.set()
        assert await first is True
        await asyncio.sleep(0.05)  # the release is posted back to the loop
        assert pool.pending == 0
        assert await pool.run(lambda: 7) == 7
    finally:
        gate.set()
        pool.close()


async def test_a_job_past_its_budget_times_out_but_keeps_its_slot_until_it_ends() -> None:
    pool = ThreadOffload(threads=1, timeout_s=0.05, max_pending=1)
    gate = threading.Event()
    try:
        with pytest.raises(OffloadTimeout):
            await pool.run(gate.wait)
        # The thread still runs the job: a second one must not pile up behind it.
        with pytest.raises(OffloadBusy):
            await pool.run(lambda: None)
        gate.set()
        await asyncio.sleep(0.05)
        assert pool.pending == 0
    finally:
        gate.set()
        pool.close()


async def test_a_failing_job_raises_its_own_error_to_the_caller_and_frees_its_slot() -> None:
    pool = ThreadOffload(threads=1, timeout_s=5, max_pending=1)

    def fail() -> None:
        raise ValueError("bad prompt")

    try:
        with pytest.raises(ValueError, match="bad prompt"):
            await pool.run(fail)
        assert pool.pending == 0
        assert await pool.run(lambda: 3) == 3
    finally:
        pool.close()


async def test_a_job_whose_caller_gave_up_while_it_was_queued_is_never_run() -> None:
    pool = ThreadOffload(threads=1, timeout_s=0.05, max_pending=4)
    gate = threading.Event()
    ran: list[int] = []
    try:
        with pytest.raises(OffloadTimeout):
            await pool.run(gate.wait)  # holds the only thread past its budget
        with pytest.raises(OffloadTimeout):
            await pool.run(lambda: ran.append(1))  # queued behind it, given up
        gate.set()
        assert await pool.run(lambda: 5) == 5
        assert ran == []
        assert pool.pending == 0
    finally:
        gate.set()
        pool.close()


async def test_closing_drops_queued_jobs_lets_running_ones_finish_and_refuses_new_ones() -> None:
    pool = ThreadOffload(threads=1, timeout_s=5, max_pending=4)
    gate = threading.Event()
    try:
        running = asyncio.ensure_future(pool.run(gate.wait))
        queued = asyncio.ensure_future(pool.run(lambda: 1))
        await asyncio.sleep(0.05)  # the first job is on the thread, the second queued
        pool.close()
        with pytest.raises(RuntimeError):
            await pool.run(lambda: 2)
        gate.set()
        assert await running is True
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert pool.pending == 0
    finally:
        gate.set()


def held_snapshot() -> tuple[Snapshot, threading.Event]:
    """The shipped snapshot whose embedder waits (off the loop) until the event is set:
    a classification that is as slow as a test needs it to be."""
    snapshot = build_snapshot(REPO / "config" / "routeiq.yaml")
    assert snapshot.router is not None
    gate = threading.Event()
    embedder = snapshot.router.embedder
    real_embed = embedder.embed

    def slow_embed(text: str):  # type: ignore[no-untyped-def]
        gate.wait(10)
        return real_embed(text)

    embedder.embed = slow_embed  # type: ignore[method-assign]
    return snapshot, gate


async def test_a_stuck_classification_does_not_delay_an_explicit_model_request() -> None:
    """The classification of an ``auto`` request is held inside the pool (the embedder
    is replaced by one that waits on an event); an explicit-model request decided on
    the same loop meanwhile completes, and the ``auto`` one is then degraded, not lost."""
    snapshot, gate = held_snapshot()
    pool = ThreadOffload(threads=1, timeout_s=2, max_pending=4)

    def request(model: str, text: str) -> ParsedRequest:
        body = f'{{"model":"{model}","messages":[{{"role":"user","content":"{text}"}}]}}'
        return parse_request(
            Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, body.encode()
        )

    try:
        auto = asyncio.ensure_future(
            decide(request("auto", "a fresh prompt never embedded"), snapshot, offload=pool)
        )
        await asyncio.sleep(0.01)
        assert pool.pending == 1
        explicit = await decide(request("gpt-4o", "hi"), snapshot, offload=pool)
        assert explicit.outcome is Outcome.ROUTED
        assert not auto.done()  # still waiting for its embedding, off the loop
        gate.set()
        decision = await auto
        assert decision.outcome is Outcome.ROUTED
        assert decision.classification is not None
    finally:
        gate.set()
        pool.close()
        snapshot.close()


async def test_past_the_budget_the_request_is_routed_without_classification() -> None:
    snapshot, gate = held_snapshot()
    pool = ThreadOffload(threads=1, timeout_s=0.05, max_pending=4)
    body = b'{"model":"auto","messages":[{"role":"user","content":"prove it, my name is a@b.co"}]}'
    parsed = parse_request(Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, body)
    try:
        decision = await decide(parsed, snapshot, offload=pool)
        assert decision.outcome is Outcome.ROUTED
        assert decision.classification is None
        assert decision.degraded == ("analysis_timeout",)
        # The content scan was part of the lost job: policies see it as incomplete.
        assert decision.findings == {"scan_incomplete": 1}
        assert decision.explain["degraded"] == ["analysis_timeout"]
    finally:
        gate.set()
        pool.close()
        snapshot.close()


STATIC_CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
metadata: {name: static}
spec:
  defaultBackend: eco
  backends:
    - {name: eco, cluster: eco, models: [small], tier: eco}
    - {name: premium, cluster: premium, models: [large], tier: premium}
  routing:
    embedder: static/embedder
    artefacts: {centroid: static/centroid}
    costQuality: {premiumShare: 0.3, model: static/quality}
"""


async def test_a_cheap_embedder_classifies_short_texts_on_the_loop(tmp_path: Path) -> None:
    """With the static embedder a short new prompt never waits for the pool (here: a
    pool whose one thread is busy and whose queue is full), a long one still goes there.
    MiniLM's ``inline_chars`` is 0: every new text goes to the pool."""
    path = tmp_path / "routeiq.yaml"
    path.write_text(STATIC_CONFIG)
    snapshot = build_snapshot(path)
    assert snapshot.router is not None and snapshot.router.embedder.inline_chars == 500
    pool = ThreadOffload(threads=1, timeout_s=2, max_pending=1)
    gate = threading.Event()
    held = asyncio.ensure_future(pool.run(lambda: gate.wait(10)))
    await asyncio.sleep(0.01)

    def request(text: str) -> ParsedRequest:
        body = f'{{"model":"auto","messages":[{{"role":"user","content":"{text}"}}]}}'
        return parse_request(
            Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, body.encode()
        )

    try:
        short = await decide(request("Sort a list of numbers in Python."), snapshot, offload=pool)
        assert short.degraded == () and short.classification is not None
        long = await decide(request("Sort these numbers. " * 60), snapshot, offload=pool)
        assert long.degraded == ("analysis_busy",) and long.classification is None
    finally:
        gate.set()
        await held
        pool.close()
        snapshot.close()
