"""The judge keeps the result of each decision text: a repeat is parsed once, and only
its latency is new; different texts, failures and new snapshots are never mixed up."""

from __future__ import annotations

import orjson
import pytest

from extproc.policy.judge import Judge, UndefinedDecision

ALLOW = orjson.dumps({"allowed": True, "reason": "allowed", "headers": {"x-a": "1"}}).decode()
DENY = orjson.dumps({"allowed": False, "reason": "no", "rule_ids": ["r1"]}).decode()


class CountingDecode:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, text: str) -> object:
        self.calls += 1
        value = orjson.loads(text)
        if value == "<undefined>":
            raise UndefinedDecision("q")
        return value


def judge(dry_run: bool = False) -> Judge:
    return Judge("embedded", deny_status=403, dry_run=dry_run, fail_open=False)


def test_a_repeated_text_is_decoded_once_and_keeps_its_meaning() -> None:
    j, decode = judge(), CountingDecode()
    first = j.answered_text(ALLOW, decode, 0.0)
    second = j.answered_text(ALLOW, decode, 0.0)
    assert decode.calls == 1
    assert second.allowed and second.headers == (("x-a", "1"),)
    assert second == first.with_latency(second.latency_s)
    assert second.latency_s > 0  # its own time, not the first request's
    denied = j.answered_text(DENY, decode, 0.0)
    assert decode.calls == 2
    assert not denied.allowed and denied.http_status == 403 and denied.rule_ids == ("r1",)
    assert j.answered_text(ALLOW, decode, 0.0).allowed  # the first is still kept


def test_malformed_and_undefined_decisions_are_never_kept() -> None:
    j, decode = judge(), CountingDecode()
    bad = orjson.dumps({"allowed": "yes"}).decode()
    for _ in range(2):
        assert j.answered_text(bad, decode, 0.0).engine_unavailable
    assert decode.calls == 2
    undefined = orjson.dumps("<undefined>").decode()
    for _ in range(2):
        with pytest.raises(UndefinedDecision):
            j.answered_text(undefined, decode, 0.0)
    assert decode.calls == 4


def test_each_judge_has_its_own_memo() -> None:
    """A reload builds a new engine, hence a new judge: a dry-run switch takes effect."""
    decode = CountingDecode()
    assert not judge().answered_text(DENY, decode, 0.0).allowed
    dry = judge(dry_run=True).answered_text(DENY, decode, 0.0)
    assert dry.allowed and dry.dry_run is not None and dry.dry_run.would_deny


def test_the_memo_is_bounded() -> None:
    j, decode = judge(), CountingDecode()
    texts = [orjson.dumps({"allowed": True, "reason": f"r{i}"}).decode() for i in range(300)]
    for text in texts:
        j.answered_text(text, decode, 0.0)
    assert len(j._memo) <= 256
