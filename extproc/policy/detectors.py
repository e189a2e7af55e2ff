"""Cheap content detectors over the prompt: emails, payment cards, API keys, private keys.

They feed ``input.routeiq.findings`` (counts by kind, never the matched text) so a
policy can keep confidential traffic in the cluster. They are regular expressions,
not a DLP product: tuned for few false positives on ordinary prompts (card numbers
must pass the Luhn check; keys need a known prefix and enough length).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from extproc.policy.spec import ALL_DETECTORS

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13-19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SECRET = re.compile(
    r"\b(?:"
    r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic / Stripe style
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r")"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )?PRIVATE KEY(?: BLOCK)?-----")


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _count_cards(text: str) -> int:
    found = 0
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            found += 1
    return found


def _counter(pattern: re.Pattern[str]) -> Callable[[str], int]:
    def count(text: str) -> int:
        return sum(1 for _ in pattern.finditer(text))

    return count


_DETECTORS: Mapping[str, Callable[[str], int]] = {
    "email": _counter(_EMAIL),
    "payment_card": _count_cards,
    "secret": _counter(_SECRET),
    "private_key": _counter(_PRIVATE_KEY),
}

_SECRET_PREFIXES = (
    "sk-", "AKIA", "ASIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_",
    "xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "AIza",
)
_DIGITS = "0123456789"


def _enough_digits(text: str) -> bool:
    """At least 13 digits in the text (the shortest card number); C-speed ``str.count``."""
    return sum(map(text.count, _DIGITS)) >= 13


# Quick pre-checks with substring searches (a few microseconds on a long prompt): a
# regex scan costs ~30 ns per character in Python's re, so it only runs when the
# marker of its kind is present.
_MARKERS: Mapping[str, Callable[[str], bool]] = {
    "email": lambda t: "@" in t,
    "payment_card": _enough_digits,
    "secret": lambda t: any(p in t for p in _SECRET_PREFIXES),
    "private_key": lambda t: "PRIVATE KEY-----" in t,
}


@dataclass(frozen=True, slots=True)
class Detectors:
    """The detectors a spec enables; ``scan`` returns counts by kind (zero kinds omitted)."""

    kinds: tuple[str, ...] = ALL_DETECTORS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(_DETECTORS)
        if unknown:
            raise ValueError(f"unknown detectors: {sorted(unknown)}")

    def scan(self, text: str) -> dict[str, int]:
        findings: dict[str, int] = {}
        if not text:
            return findings
        for kind in self.kinds:
            if _MARKERS[kind](text):
                n = _DETECTORS[kind](text)
                if n:
                    findings[kind] = n
        return findings

    def scan_body(self, body: Mapping[str, Any]) -> dict[str, int]:
        """Scan every prompt text of an OpenAI body (all messages, not only the last)."""
        return self.scan("\n".join(prompt_texts(body))) if self.kinds else {}


def _content_texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                yield part
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    yield text


def _message_texts(items: Iterable[Any]) -> Iterator[str]:
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from _content_texts(item.get("content"))
            output = item.get("output")  # Responses API function_call_output
            if isinstance(output, str):
                yield output


def prompt_texts(body: Mapping[str, Any]) -> Iterator[str]:
    """Every piece of prompt text in a chat, completions, embeddings or responses body."""
    for field in ("messages", "input", "prompt"):
        value = body.get(field)
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from _message_texts(value)
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        yield instructions
