"""Content detectors: counts by kind, Luhn-checked cards, known key shapes, no false hits,
linear time on adversarial input, and a scan cap that reports ``truncated``."""

from __future__ import annotations

import json
import re
import re._constants as sre
import re._parser as sre_parse
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc.config.snapshot import build_snapshot
from extproc.policy import Detectors, PolicySpec, build_policy_engine
from extproc.policy.detectors import (
    PATTERNS,
    TOKEN_IDS,
    TRUNCATED,
    bounded_join,
    luhn_ok,
    prompt_texts,
)
from extproc.policy.spec import DEFAULT_DETECTOR_MAX_CHARS
from tests.policy.conftest import REPO, request_doc


@pytest.mark.parametrize(("text", "expected"), [
    ("write me a haiku about spring", {}),
    ("contact alice@example.com or bob.smith+x@mail.co.uk", {"email": 2}),
    ("<alice@example.com>, mailto:ops@corp.example.org.", {"email": 2}),
    ("no tld alice@localhost, numeric tld a@b.c0m", {}),
    ("local part too long " + "x" * 65 + "@example.com", {}),
    ("card 4111 1111 1111 1111 exp 12/29", {"payment_card": 1}),
    ("card 4111-1111-1111-1111", {"payment_card": 1}),
    ("order 4111111111111112 failed", {}),  # fails Luhn
    ("phone 555 123 4567, year 2024", {}),
    ("arabic-indic digits ١٢٣٤٥٦٧٨٩٠١٢٣٤٥ are not a card", {}),
    ("key sk-proj-abcdefghijklmnopqrstuvwx1234 ok", {"secret": 1}),
    ("aws AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36, {"secret": 2}),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", {"private_key": 1}),
    ("-----BEGIN PRIVATE KEY-----", {"private_key": 1}),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOY...", {"private_key": 1}),
    ("sk-short is not a key", {}),
])  # fmt: skip
def test_scan(text: str, expected: dict[str, int]) -> None:
    assert Detectors().scan(text) == expected


def test_only_enabled_kinds_and_all_messages() -> None:
    body = {"messages": [
        {"role": "system", "content": "mail ops@example.com"},
        {"role": "user", "content": [{"type": "text", "text": "AKIAIOSFODNN7EXAMPLE"}]},
        {"role": "user", "content": "hello"},
    ]}  # fmt: skip
    assert Detectors().scan_body(body) == {"email": 1, "secret": 1}
    assert Detectors(("secret",)).scan_body(body) == {"secret": 1}
    assert Detectors(()).scan_body(body) == {}
    assert list(prompt_texts({"prompt": "p", "instructions": "i"})) == ["p", "i"]
    with pytest.raises(ValueError, match="unknown detectors"):
        Detectors(("nope",))
    with pytest.raises(ValueError, match="max_chars"):
        Detectors(max_chars=0)


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("5555555555554444")
    assert luhn_ok("79927398713") and luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112") and not luhn_ok("1234567890123")


# -- the scan cap ----------------------------------------------------------------------


def test_text_past_the_cap_is_not_scanned_and_says_truncated() -> None:
    detectors = Detectors(max_chars=100)
    head = "mail alice@example.com "
    assert detectors.scan(head.ljust(100)) == {"email": 1}  # exactly at the cap: whole
    tail_secret = head.ljust(100) + "AKIAIOSFODNN7EXAMPLE"
    assert detectors.scan(tail_secret) == {"email": 1, TRUNCATED: 1}
    body = {"messages": [{"role": "user", "content": head}] * 10}
    assert detectors.scan_body(body) == {"email": 4, TRUNCATED: 1}
    assert Detectors(()).scan("x" * 1000) == {}
    assert Detectors().max_chars == DEFAULT_DETECTOR_MAX_CHARS


@pytest.mark.parametrize(("texts", "limit", "expected"), [
    (["ab", "cd"], 5, ("ab\ncd", False)),
    (["ab", "cd"], 4, ("ab\nc", True)),
    (["ab", "cd"], 3, ("ab", True)),  # only the separator fits
    (["ab", "", "", "cd"], 5, ("ab\ncd", False)),  # empty texts take no room
    (["abcdef"], 2, ("ab", True)),
    ([], 1, ("", False)),
])  # fmt: skip
def test_bounded_join(texts: list[str], limit: int, expected: tuple[str, bool]) -> None:
    assert bounded_join(texts, limit) == expected


def test_bounded_join_stops_reading_at_the_cap() -> None:
    def endless() -> Any:
        while True:
            yield "x" * 10

    assert bounded_join(endless(), 25) == ("x" * 10 + "\n" + "x" * 10 + "\n" + "xxx", True)


def test_detector_max_chars_is_a_policy_spec_field() -> None:
    spec = PolicySpec.model_validate({"detectorMaxChars": 4096})
    assert spec.detector_max_chars == 4096
    assert PolicySpec().detector_max_chars == DEFAULT_DETECTOR_MAX_CHARS
    with pytest.raises(ValueError, match="detectorMaxChars"):
        PolicySpec.model_validate({"detectorMaxChars": 0})


def test_snapshot_applies_detector_max_chars(tmp_path: Path) -> None:
    """The snapshot builds its detectors with the configured cap."""
    config = {
        "apiVersion": "routeiq.dev/v1alpha1",
        "kind": "RoutingConfig",
        "spec": {
            "backends": [{"name": "b", "cluster": "c", "models": ["m"], "tier": "eco"}],
            "policy": {
                "engine": "embedded",
                "modules": [str(REPO / "policies")],
                "data": [str(REPO / "policies" / "data")],
                "detectorMaxChars": 4096,
            },
        },
    }
    path = tmp_path / "routeiq.yaml"
    path.write_text(yaml.safe_dump(config))
    snapshot = build_snapshot(path, with_router=False)
    try:
        assert snapshot.detectors is not None
        assert snapshot.detectors.max_chars == 4096
    finally:
        if snapshot.policy is not None:
            snapshot.policy.close()


async def test_truncated_can_make_a_request_confidential(tmp_path: Path) -> None:
    """The fail-closed recipe in docs/security.md: list ``truncated`` among the
    confidential finding kinds of the shipped policy data."""
    data = tmp_path / "data"
    shutil.copytree(REPO / "policies" / "data", data)
    conf = yaml.safe_load((data / "confidential.yaml").read_text())
    conf["routeiq_data"]["confidential"]["finding_kinds"].append(TRUNCATED)
    (data / "confidential.yaml").write_text(yaml.safe_dump(conf))
    spec = PolicySpec(engine="embedded", modules=(str(REPO / "policies"),), data=(str(data),))
    engine = build_policy_engine(spec, REPO)
    try:
        result = await engine.evaluate(request_doc(findings={TRUNCATED: 1}))
        assert result.allowed and result.require_in_cluster
        assert not (await engine.evaluate(request_doc())).require_in_cluster
    finally:
        engine.close()


# -- linear time -----------------------------------------------------------------------


def _repeats(items: Any, inside_atomic: bool = False) -> Any:
    """Every repeat node of a parsed pattern: (opcode, max, inside an atomic group)."""
    for op, arg in items:
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            yield op, arg[1], inside_atomic
            yield from _repeats(arg[2], inside_atomic)
        elif op is sre.ATOMIC_GROUP:
            yield from _repeats(arg, True)
        elif op is sre.SUBPATTERN:
            yield from _repeats(arg[3], inside_atomic)
        elif op is sre.BRANCH:
            for branch in arg[1]:
                yield from _repeats(branch, inside_atomic)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            yield from _repeats(arg[1], inside_atomic)


def _starts_anchored(items: Any) -> bool:
    """A literal first character, a word boundary then a branch of literal prefixes, or
    a negative lookbehind (a match may only start where a run of its characters starts)."""
    op, arg = items[0]
    if op is sre.LITERAL:
        return True
    if op is sre.AT and arg is sre.AT_BOUNDARY and items[1][0] is sre.BRANCH:
        return all(branch[0][0] is sre.LITERAL for branch in items[1][1][1])
    return op is sre.ASSERT_NOT and arg[0] == -1


@pytest.mark.parametrize("kind", sorted(PATTERNS))
def test_patterns_cannot_backtrack_without_bound(kind: str) -> None:
    """Structure, not timing: every open-ended repeat is possessive or atomic (never
    given back) and every match starts at an anchor, so no input can make a pattern
    retry an unbounded stretch of text from every position."""
    parsed = list(sre_parse.parse(PATTERNS[kind].pattern))
    for op, maximum, atomic in _repeats(parsed):
        if maximum is sre.MAXREPEAT:
            assert op is sre.POSSESSIVE_REPEAT or atomic, (kind, op)
        else:
            assert maximum <= 200, (kind, maximum)
    assert _starts_anchored(parsed), kind


_ADVERSARIAL = {
    "email_run": ("'a' * n + '@'", {}),
    "email_ats": ("'a@' * (n // 2)", {}),
    "email_labels": ("'x@' + 'a.' * (n // 2)", {}),
    "card_spaced": ("'1 ' * (n // 2)", None),
    "card_digits": ("'1' * n", {}),
    "secret_prefixes": ("'sk-' * (n // 3)", {"secret": 1}),
    "key_headers": ("('-----BEGIN ' + 'A' * 40) * (n // 51)", {}),
}


def test_adversarial_inputs_of_256k_complete() -> None:
    """Each adversarial shape at 16 KiB and 256 KiB is scanned in a subprocess bounded
    by a generous 20 s timeout. It is not a timing assertion: the linear scan takes
    milliseconds, while the quadratic e-mail pattern this replaced needed about 90 s
    for 256 KiB; the timeout only catches such a catastrophic blow-up (the ratios are
    in benchmarks/detectors.py)."""
    script = textwrap.dedent(
        """
        import json, sys
        from extproc.policy import Detectors
        detectors = Detectors(max_chars=1 << 20)
        out = {}
        for name, expr in json.loads(sys.argv[1]).items():
            for n in (16 * 1024, 256 * 1024):
                out[f"{name}/{n}"] = detectors.scan(eval(expr, {"n": n}))
        print(json.dumps(out))
        """
    )
    shapes = {name: expr for name, (expr, _) in _ADVERSARIAL.items()}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(shapes)],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
        cwd=REPO,
    )
    results = json.loads(done.stdout)
    assert len(results) == 2 * len(_ADVERSARIAL)
    for key, findings in results.items():
        expected = _ADVERSARIAL[key.split("/")[0]][1]
        if expected is not None:
            assert findings == expected, key
    assert set(results["card_spaced/16384"]) <= {"payment_card"}


def test_email_pattern_needs_no_retry_inside_a_run() -> None:
    """The e-mail match may only start where a run of local-part characters starts."""
    assert PATTERNS["email"].search("x" * 10 + "a@example.com").start() == 0
    assert re.compile(PATTERNS["email"].pattern).fullmatch("a@b.co")


CARD = "4111 1111 1111 1111"


@pytest.mark.parametrize(("text", "expected"), [
    ("card 4111\u200b1111\u200b1111\u200b1111", {"payment_card": 1}),  # zero-width spaces
    ("card ４１１１ １１１１ １１１１ １１１１", {"payment_card": 1}),  # full-width digits
    ("card 4111\u20601111\u00ad1111\ufeff1111", {"payment_card": 1}),  # joiner, soft hyphen, BOM
    ("mail alice\u200d@exa\u200cmple.com", {"email": 1}),  # zero-width joiners
    ("mail alice＠example．com", {"email": 1}),  # full-width at sign and dot
    ("key s\u200bk-proj-abcdefghijklmnopqrstuvwx1234", {"secret": 1}),
    ("\u202e4111 1111 1111 1111\u202c", {"payment_card": 1}),  # bidi override around it
])  # fmt: skip
def test_invisible_and_full_width_spellings_are_seen(text: str, expected: dict[str, int]) -> None:
    """A model reads through zero-width and format characters and full-width forms; the
    detectors see the same text (NFKC, format characters removed)."""
    assert Detectors().scan(text) == expected


def test_format_ranges_are_this_pythons_format_characters() -> None:
    import unicodedata

    from extproc.policy.detectors import FORMAT_RANGES

    listed = {c for a, b in FORMAT_RANGES for c in range(a, b + 1)}
    actual = {c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"}
    assert listed == actual


def test_expanding_characters_stay_under_the_cap() -> None:
    """NFKC can lengthen text (U+FDFA is 18 characters): the cap applies after it too."""
    findings = Detectors(max_chars=1000).scan("\ufdfa" * 1000)
    assert findings == {TRUNCATED: 1}


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function",
         "function": {"name": "pay", "arguments": json.dumps({"card": CARD})}}]}]},
    {"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"type": "function", "function": {"name": "pay", "description": f"use {CARD}"}}]},
    {"input": "hi", "tools": [{"type": "function", "name": "pay", "description": CARD}]},
    {"input": [{"type": "function_call", "name": "pay", "arguments": CARD}]},
    {"messages": [{"role": "user", "content": "fix it"}],
     "prediction": {"type": "content", "content": f"card = '{CARD}'"}},
])  # fmt: skip
def test_text_the_model_is_shown_beyond_message_content_is_scanned(body: dict[str, Any]) -> None:
    assert Detectors().scan_body(body) == {"payment_card": 1}


@pytest.mark.parametrize(("body", "expected"), [
    ({"prompt": [[4111, 1111], [1111, 1111]]}, {TOKEN_IDS: 1}),  # completions, batched ids
    ({"prompt": [4111, 1111, 1111, 1111]}, {TOKEN_IDS: 1}),
    ({"input": [4111, 1111]}, {TOKEN_IDS: 1}),  # embeddings
    ({"prompt": ["a text", [1, 2]]}, {TOKEN_IDS: 1}),
    ({"prompt": ["card 4111 1111 1111 1111"]}, {"payment_card": 1}),
    ({"input": [{"role": "user", "content": "hi"}]}, {}),  # responses items are text
])  # fmt: skip
def test_token_id_prompts_are_reported_unscanned(
    body: dict[str, Any], expected: dict[str, int]
) -> None:
    """No pattern reads token ids; the finding lets a policy keep them in-cluster (the
    shipped confidential data lists it)."""
    assert Detectors().scan_body(body) == expected
