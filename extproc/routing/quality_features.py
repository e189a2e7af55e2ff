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
_MATH_SYMBOLS = re.compile(r"[=+^*/<>√∫∑π%$]|\\frac|\\sqrt|\\cdot|\\times|\bsin\b|\bcos\b|\blog\b")
_MATH_WORDS = re.compile(
    r"\b(calculate|compute|solve|how many|how much|what is the value|find the|evaluate|"
    r"probability|equation|integral|derivative|sum of|product of|percent|ratio|average|"
    r"remainder|greatest|least|maximum|minimum)\b",
    re.IGNORECASE,
)
_CODE = re.compile(
    r"```|\bdef |\bclass |\breturn\b|\bfunction\b|\bimport |#include|\bSELECT\b|=>|;\s*$|"
    r"\bpython\b|\bjava(?:script)?\b|\bc\+\+|\bsql\b|\bregex\b|\w+\(\)",
    re.IGNORECASE | re.MULTILINE,
)
_REASONING = re.compile(
    r"\b(step[- ]by[- ]step|think (?:carefully|hard|deeply)|prove|proof|derive|derivation|"
    r"explain why|justify|rigorous(?:ly)?|show that|deduce|infer|implies|therefore|"
    r"which of the following (?:must|could|is (?:true|false)))\b",
    re.IGNORECASE,
)
_CHOICE_LINE = re.compile(r"^\s*\(?[A-Ja-j][.):]\s", re.MULTILINE)


def _log(value: float) -> float:
    return math.log1p(value)


def text_features(text: str) -> list[float]:
    """The ``FEATURE_NAMES`` values of one text, in order (counts are log-scaled)."""
    chars = len(text)
    digits = sum(c.isdigit() for c in text)
    return [
        _log(chars),
        _log(len(text.split())),
        _log(text.count("\n")),
        digits / chars if chars else 0.0,
        _log(len(_NUMBER.findall(text))),
        _log(len(_MATH_SYMBOLS.findall(text))),
        _log(len(_MATH_WORDS.findall(text))),
        _log(len(_CODE.findall(text))),
        _log(len(_REASONING.findall(text))),
        _log(len(_CHOICE_LINE.findall(text))),
        _log(text.count("?")),
    ]


def feature_matrix(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """``[n, len(FEATURE_NAMES)]`` features of many texts."""
    if not texts:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    return np.asarray([text_features(t) for t in texts], dtype=np.float32)
