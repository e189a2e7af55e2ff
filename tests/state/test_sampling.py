"""Sampled status reads for backend health: 1 in N while quiet, every one after a failure."""

from __future__ import annotations

import dataclasses

from extproc.state.rules import compile_health_rule
from extproc.state.sampling import StatusSampler
from extproc.state.spec import HealthSpec

RULE = compile_health_rule(HealthSpec(sample_every=4, window_seconds=10))


def reads(sampler: StatusSampler, count: int, now: float) -> list[bool]:
    return [sampler.wants(RULE, now) for _ in range(count)]


def test_every_request_reads_by_default() -> None:
    rule = compile_health_rule(HealthSpec())
    assert rule.sample_every == 1
    sampler = StatusSampler()
    assert all(sampler.wants(rule, 0.0) for _ in range(5))


def test_one_request_in_n_reads_while_no_failure_is_seen() -> None:
    sampler = StatusSampler()
    assert reads(sampler, 8, 0.0) == [True, False, False, False] * 2
    sampler.saw(RULE, 200, 1.0)  # a success changes nothing
    sampler.saw(RULE, 404, 1.0)  # nor a status the rule does not count
    assert reads(sampler, 4, 1.0) == [True, False, False, False]


def test_a_failure_makes_every_request_read_for_one_window() -> None:
    sampler = StatusSampler()
    reads(sampler, 2, 0.0)
    sampler.saw(RULE, 503, 5.0)
    assert reads(sampler, 6, 5.0) == [True] * 6
    assert reads(sampler, 3, 14.9) == [True] * 3
    # A later failure extends the watch from its own time.
    sampler.saw(RULE, 0, 14.9)  # no answer at all counts too
    assert reads(sampler, 2, 24.0) == [True, True]
    # A window without a failure: back to 1 in N.
    assert reads(sampler, 4, 25.0).count(True) == 1


def test_a_reload_to_another_rate_takes_effect_at_once() -> None:
    sampler = StatusSampler()
    reads(sampler, 3, 0.0)
    every = dataclasses.replace(RULE, sample_every=1)
    assert all(sampler.wants(every, 0.0) for _ in range(3))
    two = dataclasses.replace(RULE, sample_every=2)
    assert [sampler.wants(two, 0.0) for _ in range(4)].count(True) == 2
