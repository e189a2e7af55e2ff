"""Cost figures pinned against prices computed by hand (USD per million tokens)."""

from __future__ import annotations

from pathlib import Path

import pytest

from extproc.api.usage import Usage, estimate_usage
from extproc.config.errors import ConfigError
from extproc.config.schema import Cost
from extproc.config.snapshot import Snapshot
from extproc.cost.accountant import OTHER_TEAM, CostBook, PriceTable
from extproc.cost.prices import usage_cost
from extproc.decide import decide
from tests.cost.conftest import chat, cost_snapshot

ECO = Cost(input_per_m_tok=0.15, output_per_m_tok=0.60)
PREMIUM = Cost(input_per_m_tok=2.50, output_per_m_tok=10.00, cached_input_per_m_tok=1.25)


def test_usage_cost_by_hand() -> None:
    # 1000 in x 0.15 + 500 out x 0.60 = 150 + 300 = 450 per million -> $0.00045
    assert usage_cost(ECO, Usage(1000, 500, 1500)) == pytest.approx(0.00045, abs=1e-15)
    # 1000 x 2.50 + 500 x 10.00 = 7500 per million
    assert usage_cost(PREMIUM, Usage(1000, 500, 1500)) == pytest.approx(0.0075, abs=1e-15)


def test_cached_input_at_its_own_price_else_the_input_price() -> None:
    # 600 uncached x 2.50 + 400 cached x 1.25 + 500 x 10.00 = 1500 + 500 + 5000 -> $0.007
    cached = Usage(1000, 500, 1500, cached_tokens=400)
    assert usage_cost(PREMIUM, cached) == pytest.approx(0.007, abs=1e-15)
    assert usage_cost(ECO, cached) == usage_cost(ECO, Usage(1000, 500, 1500))
    # a cached count above the prompt count (a buggy upstream) is capped at the prompt
    silly = Usage(100, 0, 100, cached_tokens=900)
    assert usage_cost(PREMIUM, silly) == pytest.approx(100 * 1.25e-6, abs=1e-15)


def test_reasoning_tokens_are_part_of_output_not_added_again() -> None:
    with_reasoning = Usage(10, 300, 310, reasoning_tokens=250)
    assert usage_cost(PREMIUM, with_reasoning) == pytest.approx(
        (10 * 2.5 + 300 * 10) / 1e6, abs=1e-15
    )


def test_estimated_usage_is_priced_like_reported_usage() -> None:
    usage = estimate_usage(17, 41)  # ceil(41 / 4) = 11 output tokens
    assert usage.estimated and usage.completion_tokens == 11
    assert usage_cost(ECO, usage) == pytest.approx((17 * 0.15 + 11 * 0.60) / 1e6, abs=1e-15)


async def test_profile_reference_is_the_most_expensive_backend(snapshot: Snapshot) -> None:
    decision = await decide(chat("premium", team="search"), snapshot)  # profile: no classifier
    assert decision.profile == "premium"
    usage = Usage(1000, 500, 1500)
    record = CostBook().price(decision, usage, snapshot)
    assert record is not None and record.backend == decision.backend
    # every backend is a candidate of a profile; premium-b is the dearest: 3000 + 6000
    assert record.reference_backend == "premium-b"
    assert record.counterfactual_usd == pytest.approx(0.009, abs=1e-15)
    assert record.saved_usd == pytest.approx(0.009 - record.cost_usd, abs=1e-15)
    assert record.team == "search" and record.team_label == "search"


async def test_explicit_model_reference_is_among_its_servers(snapshot: Snapshot) -> None:
    decision = await decide(chat("gpt-4o-mini"), snapshot)
    record = CostBook().price(decision, Usage(1000, 500, 1500), snapshot)
    assert record is not None
    # only eco serves gpt-4o-mini: nothing else could have served it, nothing saved
    assert (record.backend, record.reference_backend) == ("eco", "eco")
    assert record.cost_usd == record.counterfactual_usd == pytest.approx(0.00045, abs=1e-15)
    assert record.team_label == "none"


async def test_named_reference_can_make_savings_negative(tmp_path: Path) -> None:
    snap = cost_snapshot(tmp_path, referenceBackend="eco")
    decision = await decide(chat("gpt-4o"), snap)
    assert decision.backend in ("premium", "premium-b")
    record = CostBook().price(decision, Usage(1000, 500, 1500), snap)
    assert record is not None and record.reference_backend == "eco"
    assert record.counterfactual_usd == pytest.approx(0.00045, abs=1e-15)
    assert record.saved_usd < 0  # routed to something dearer than the reference


def test_unknown_reference_backend_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="referenceBackend 'nope' is not a backend"):
        cost_snapshot(tmp_path, referenceBackend="nope")


def test_team_labels_are_bounded(snapshot: Snapshot, tmp_path: Path) -> None:
    book = CostBook()
    table = book.table(snapshot.version, snapshot)
    assert [book.team_label(t, table) for t in ("search", "ads", "x", None)] == [
        "search", "ads", OTHER_TEAM, "none",
    ]  # fmt: skip
    open_snap = cost_snapshot(tmp_path, maxTeams=2)
    first_seen = PriceTable.from_snapshot(open_snap)
    labels = [book.team_label(t, first_seen) for t in ("a", "b", "c", "a", "d")]
    assert labels == ["a", "b", OTHER_TEAM, "a", OTHER_TEAM]
    assert book.team_label("t" * 500, first_seen) == OTHER_TEAM


async def test_response_priced_with_the_config_that_routed_it(tmp_path: Path) -> None:
    old = cost_snapshot()
    decision = await decide(chat("gpt-4o-mini"), old)
    book = CostBook()
    book.table(old.version, old)  # the process priced something under the old config
    new = cost_snapshot(tmp_path, referenceBackend="premium")  # reload: a new version
    record = book.price(decision, Usage(1000, 500, 1500), new)
    assert record is not None and record.reference_backend == "eco"  # the old rule
    fresh = book.price(await decide(chat("gpt-4o-mini"), new), Usage(1, 1, 2), new)
    assert fresh is not None and fresh.reference_backend == "premium"  # the new rule
