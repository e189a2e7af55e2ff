"""Content detectors: counts by kind, Luhn-checked cards, known key shapes, no false hits."""

from __future__ import annotations

import pytest

from extproc.policy import Detectors
from extproc.policy.detectors import luhn_ok, prompt_texts


@pytest.mark.parametrize(("text", "expected"), [
    ("write me a haiku about spring", {}),
    ("contact alice@example.com or bob.smith+x@mail.co.uk", {"email": 2}),
    ("card 4111 1111 1111 1111 exp 12/29", {"payment_card": 1}),
    ("card 4111-1111-1111-1111", {"payment_card": 1}),
    ("order 4111111111111112 failed", {}),  # fails Luhn
    ("phone 555 123 4567, year 2024", {}),
    ("key sk-proj-abcdefghijklmnopqrstuvwx1234 ok", {"secret": 1}),
    ("aws AKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36, {"secret": 2}),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", {"private_key": 1}),
    ("-----BEGIN PRIVATE KEY-----", {"private_key": 1}),
    ("sk-short is not a key", {}),
])
def test_scan(text: str, expected: dict[str, int]) -> None:
    assert Detectors().scan(text) == expected


def test_only_enabled_kinds_and_all_messages() -> None:
    body = {"messages": [
        {"role": "system", "content": "mail ops@example.com"},
        {"role": "user", "content": [{"type": "text", "text": "AKIAIOSFODNN7EXAMPLE"}]},
        {"role": "user", "content": "hello"},
    ]}
    assert Detectors().scan_body(body) == {"email": 1, "secret": 1}
    assert Detectors(("secret",)).scan_body(body) == {"secret": 1}
    assert Detectors(()).scan_body(body) == {}
    assert list(prompt_texts({"prompt": "p", "instructions": "i"})) == ["p", "i"]
    with pytest.raises(ValueError, match="unknown detectors"):
        Detectors(("nope",))


def test_luhn() -> None:
    assert luhn_ok("4111111111111111") and luhn_ok("5555555555554444")
    assert not luhn_ok("4111111111111112")
