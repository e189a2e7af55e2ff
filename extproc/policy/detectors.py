"""Cheap content detectors over the prompt: emails, payment cards, API keys, private keys.

They feed ``input.routeiq.findings`` (counts by kind, never the matched text) so a
policy can keep confidential traffic in the cluster. They are regular expressions,
not a DLP product: tuned for few false positives on ordinary prompts (card numbers
must pass the Luhn check; keys need a known prefix and enough length).

They run on every request, so their cost must not depend on what a client chooses to
send beyond the size of the text. Two rules keep every scan linear in its input:

- **No backtracking blow-up.** Each pattern either has a literal anchor that a match
  must start at, or starts only at the beginning of a run of its own characters (a
  negative lookbehind), so each character starts at most a bounded amount of work.
  Every repetition is bounded (``{1,64}``) or possessive (``{20,}+``, never given
  back), so a failed attempt costs at most its bound. The old e-mail pattern, which
  retried the whole local part from every character of a long run, took quadratic
  time (``'a' * 65536 + '@'``: seconds).
- **What the model reads, not how it is spelled.** Non-ASCII text is brought to NFKC
  (full-width ``４１１１`` and ``＠`` become ``4111`` and ``@``) and stripped of
  invisible format characters (zero-width spaces and joiners, soft hyphens, bidi
  controls: Unicode category Cf), which a model reads through but which would split a
  match. ASCII text, most prompts, skips both (``str.isascii`` is one C pass). The text
  scanned includes what a model is shown besides the messages' content: assistant tool
  call arguments, tool descriptions and predicted output.
- **A cap on scanned text.** At most ``max_chars`` characters of prompt text are
  scanned per request (``spec.policy.detectorMaxChars``); past it the scan stops and
  adds the finding ``truncated: 1``. A policy that must fail closed lists
  ``truncated`` among the kinds that make a request confidential.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from extproc.policy.spec import ALL_DETECTORS, DEFAULT_DETECTOR_MAX_CHARS

TRUNCATED = "truncated"
"""The finding added when the prompt text was longer than the scan cap."""
TOKEN_IDS = "token_ids"
"""The finding added when a prompt is given as token ids (completions ``prompt``,
embeddings ``input``): text no pattern can read, so a policy can treat it as unscanned."""

# Local part: 1-64 characters (RFC 5321), starting where a run of local-part characters
# starts (the lookbehind), taken possessively: '@' is not in the class, so giving
# characters back could never produce a match. Domain: labels of 1-63 characters, at
# most 127 of them, and a final alphabetic label (the TLD).
_LOCAL = r"[A-Za-z0-9._%+-]"
_EMAIL = re.compile(
    rf"(?<!{_LOCAL}){_LOCAL}{{1,64}}+@"
    r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,126}\.[A-Za-z]{2,63}"
)
# 13-19 ASCII digits, optionally grouped by single spaces or dashes, starting where a
# digit run starts: a bounded attempt per start.
_CARD = re.compile(r"(?<![0-9-])[0-9](?:[ -]?[0-9]){12,18}(?![0-9-])")
# Each alternative starts with a literal prefix; the open-ended tails are possessive
# (nothing follows them, so they never need to give characters back).
_SECRET = re.compile(
    r"\b(?:"
    r"sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}+"  # OpenAI / Anthropic / Stripe style
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{36,}+"  # GitHub tokens
    r"|xox[abprs]-[A-Za-z0-9-]{10,}+"  # Slack tokens
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r")"
)
# PEM and PGP armour: "-----BEGIN [TYPE ]PRIVATE KEY[ BLOCK]-----".
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]{1,32}+ )?PRIVATE KEY(?: BLOCK)?-----")

PATTERNS: Mapping[str, re.Pattern[str]] = {
    "email": _EMAIL,
    "payment_card": _CARD,
    "secret": _SECRET,
    "private_key": _PRIVATE_KEY,
}
"""Every detector's pattern, by kind (the linear-time rules above hold for each)."""

_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # a digit -> digit sum of its double


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies (ASCII digits only).

    Every second digit from the right is doubled (``_DOUBLED``); the sums come from the
    ASCII codes, in C rather than a Python loop per digit.
    """
    raw = digits.encode()
    doubled = raw[-2::-2].translate(_DOUBLED)
    return (sum(raw[-1::-2]) + sum(doubled) - 48 * len(raw)) % 10 == 0


def _count_cards(text: str) -> int:
    return sum(
        1 for found in _CARD.findall(text) if luhn_ok(found.replace(" ", "").replace("-", ""))
    )


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
)  # fmt: skip
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
    "private_key": lambda t: "-----BEGIN " in t,
}


# The format characters (Unicode category Cf: soft hyphen, zero-width space/joiners,
# bidi controls, word joiner, BOM, tags...) as inclusive code point ranges, so that
# importing does not walk all of Unicode; tests/policy/test_detectors.py checks them
# against this Python's ``unicodedata``.
FORMAT_RANGES: tuple[tuple[int, int], ...] = (
    (0xAD, 0xAD), (0x600, 0x605), (0x61C, 0x61C), (0x6DD, 0x6DD), (0x70F, 0x70F),
    (0x890, 0x891), (0x8E2, 0x8E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x13438), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_INVISIBLE = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in FORMAT_RANGES) + "]")


def visible(text: str) -> str:
    """``text`` as a model reads it: NFKC, without format characters (ASCII: as is).

    Each step runs only when needed (``is_normalized`` and a character-class search are
    quick C scans), so already-normal text without format characters is not copied.
    """
    if text.isascii():
        return text
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return _INVISIBLE.sub("", text) if _INVISIBLE.search(text) else text


def bounded_join(texts: Iterable[str], limit: int) -> tuple[str, bool]:
    """The texts joined by newlines, cut at ``limit`` characters; whether anything was cut.

    Stops reading ``texts`` at the cap, so a huge prompt is never copied whole.
    """
    parts: list[str] = []
    room = limit
    for text in texts:
        if not text:
            continue
        if parts:
            room -= 1  # the separator
        if len(text) > room:
            if room > 0:
                parts.append(text[:room])
            return "\n".join(parts), True
        parts.append(text)
        room -= len(text)
    return "\n".join(parts), False


@dataclass(frozen=True, slots=True)
class Detectors:
    """The detectors a spec enables and the scan cap; ``scan`` returns counts by kind.

    Kinds with no match are omitted. Text past ``max_chars`` is not scanned: the
    result then also carries ``truncated: 1``.
    """

    kinds: tuple[str, ...] = ALL_DETECTORS
    max_chars: int = DEFAULT_DETECTOR_MAX_CHARS

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(_DETECTORS)
        if unknown:
            raise ValueError(f"unknown detectors: {sorted(unknown)}")
        if self.max_chars < 1:
            raise ValueError("max_chars must be at least 1")

    def scan(self, text: str) -> dict[str, int]:
        if not self.kinds:
            return {}
        return self._scan_bounded(text, len(text) > self.max_chars)

    def _scan_bounded(self, text: str, truncated: bool) -> dict[str, int]:
        """Scan at most ``max_chars`` of ``text`` as seen (:func:`visible`: NFKC may
        lengthen it, so the cap applies again after)."""
        text = visible(text[: self.max_chars])
        if len(text) > self.max_chars:
            text, truncated = text[: self.max_chars], True
        findings = self._scan(text)
        if truncated:
            findings[TRUNCATED] = 1
        return findings

    def _scan(self, text: str) -> dict[str, int]:
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
        if not self.kinds:
            return {}
        text, truncated = bounded_join(prompt_texts(body), self.max_chars)
        findings = self._scan_bounded(text, truncated)
        if has_token_ids(body):
            findings[TOKEN_IDS] = 1
        return findings


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


def _call_arguments(calls: Any) -> Iterator[str]:
    """Arguments of an assistant message's ``tool_calls`` (the model reads them back)."""
    if isinstance(calls, list):
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                yield arguments


def _message_texts(items: Iterable[Any]) -> Iterator[str]:
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from _content_texts(item.get("content"))
            yield from _call_arguments(item.get("tool_calls"))
            for field in ("output", "arguments"):  # Responses API call items
                value = item.get(field)
                if isinstance(value, str):
                    yield value


def _tool_descriptions(tools: Any) -> Iterator[str]:
    if isinstance(tools, list):
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            function = tool.get("function")
            owner = function if isinstance(function, dict) else tool  # chat or responses
            description = owner.get("description")
            if isinstance(description, str):
                yield description


def has_token_ids(body: Mapping[str, Any]) -> bool:
    """Whether ``prompt`` or ``input`` holds token ids (a list with anything but strings:
    ints, or lists of ints). ``all`` stops at the first one."""
    for field in ("prompt", "input"):
        value = body.get(field)
        if isinstance(value, list) and not all(isinstance(v, str | dict) for v in value):
            return True
    return False


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
    yield from _tool_descriptions(body.get("tools"))
    prediction = body.get("prediction")  # predicted output: shown to the model
    if isinstance(prediction, dict):
        yield from _content_texts(prediction.get("content"))
