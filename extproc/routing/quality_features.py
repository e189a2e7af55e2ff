"""Cheap request-text features for the quality model, shared by training and serving.

The quality model sees the MiniLM embedding plus these few numbers, computed from the
embedded text alone (no I/O, a handful of regex scans). Training and serving call the
same :func:`text_features`, so a feature can never drift between them; the artefact's
manifest lists ``FEATURE_NAMES`` and loading refuses an artefact built with other names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_share",
    "log_numbers",
    "math_symbols",
    "math_words",
    "code_markers",
    "reasoning_markers",
    "choice_lines",
    "questions",
)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[a-z+#]+")
_CHOICE_LINE = re.compile(r"^\s*\(?[A-Ja-j][.):]\s", re.MULTILINE)
# Markers are counted with str.count and set lookups on the lower-cased text: Python's
# regex alternations with \b and IGNORECASE cost milliseconds on a 2000-character prompt.
_MATH_CHARS = "=+^*/<>√∫∑π%$"
_MATH_PHRASES = (
    "\\frac",
    "\\sqrt",
    "\\cdot",
    "\\times",
    "how many",
    "how much",
    "what is the value",
    "find the",
    "sum of",
    "product of",
)
_MATH_WORDS = frozenset(
    {
        "calculate",
        "compute",
        "solve",
        "evaluate",
        "probability",
        "equation",
        "integral",
        "derivative",
        "percent",
        "ratio",
        "average",
        "remainder",
        "greatest",
        "least",
        "maximum",
        "minimum",
        "sin",
        "cos",
        "log",
    }
)
_CODE_PHRASES = (
    "```",
    "def ",
    "class ",
    "return",
    "function",
    "import ",
    "#include",
    "select ",
    "=>",
    "()",
    "{",
    "};",
)
_CODE_WORDS = frozenset(
    {"python", "java", "javascript", "sql", "regex", "c++", "bash", "typescript", "rust", "golang"}
)
_REASONING_PHRASES = (
    "step by step",
    "step-by-step",
    "think carefully",
    "think hard",
    "explain why",
    "show that",
    "which of the following must",
    "which of the following could",
    "which of the following is true",
    "which of the following is false",
)
_REASONING_WORDS = frozenset(
    {
        "prove",
        "proof",
        "derive",
        "derivation",
        "justify",
        "rigorous",
        "rigorously",
        "deduce",
        "infer",
        "implies",
        "therefore",
    }
)


def _log(value: float) -> float:
    return math.log1p(value)


def _count(text: str, needles: tuple[str, ...]) -> int:
    return sum(text.count(n) for n in needles)


def text_features(text: str) -> list[float]:
    """The ``FEATURE_NAMES`` values of one text, in order (counts are log-scaled)."""
    chars = len(text)
    lower = text.lower()
    words = set(_WORD.findall(lower))  # distinct words: markers count once each
    digits = _count(text, tuple("0123456789"))
    return [
        _log(chars),
        _log(len(text.split())),
        _log(text.count("\n")),
        digits / chars if chars else 0.0,
        _log(len(_NUMBER.findall(text))),
        _log(_count(text, tuple(_MATH_CHARS)) + _count(lower, _MATH_PHRASES[:4])),
        _log(_count(lower, _MATH_PHRASES[4:]) + len(words & _MATH_WORDS)),
        _log(_count(lower, _CODE_PHRASES) + len(words & _CODE_WORDS)),
        _log(_count(lower, _REASONING_PHRASES) + len(words & _REASONING_WORDS)),
        _log(len(_CHOICE_LINE.findall(text))),
        _log(text.count("?")),
    ]


def feature_matrix(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """``[n, len(FEATURE_NAMES)]`` features of many texts."""
    if not texts:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.asarray([text_features(t) for t in texts], dtype=np.float32)
