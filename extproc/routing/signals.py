"""Request signals beyond the embedding, keyed by name (never one field per signal).

Every signal is computed from ``ParsedRequest`` fields with no I/O; values are ``int``,
``float`` or ``bool`` so that ``SignalRule`` bounds apply uniformly (bools as 0/1) and new
signals need no schema change. Names are part of the config contract (signal rules refer
to them) and are listed in ``SIGNAL_NAMES``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from extproc.api.openai import ParsedRequest

SignalValue = float | int | bool

# Phrases with which users ask for explicit, careful multi-step reasoning or proofs.
_REASONING = re.compile(
    r"\b(step[- ]by[- ]step|think (?:carefully|hard|deeply)|prove|proof|derive|derivation|"
    r"chain[- ]of[- ]thought|reason (?:carefully|through|about)|show your (?:work|reasoning)|"
    r"rigorous(?:ly)?|justify|formal(?:ly)? (?:verify|prove))\b",
    re.IGNORECASE,
)
_CODE_FENCE = re.compile(r"```")

# A conversation this long is treated as an agent loop even without declared tools.
LONG_CONVERSATION_MESSAGES = 12

SIGNAL_NAMES: tuple[str, ...] = (
    "tools",
    "tool_messages",
    "messages",
    "agentic",
    "reasoning_markers",
    "code_blocks",
    "prompt_tokens",
    "max_tokens",
    "has_images",
    "wants_json",
    "stream",
)


def compute_signals(request: ParsedRequest, text: str | None = None) -> Mapping[str, SignalValue]:
    """The named signals of one request (``text``: what to scan, default last user turn)."""
    scan = request.last_user_text if text is None else text
    agentic = (
        request.tool_count > 0
        or request.tool_message_count > 0
        or request.message_count >= LONG_CONVERSATION_MESSAGES
    )
    return MappingProxyType(
        {
            "tools": request.tool_count,
            "tool_messages": request.tool_message_count,
            "messages": request.message_count,
            "agentic": agentic,
            "reasoning_markers": len(_REASONING.findall(scan)),
            "code_blocks": len(_CODE_FENCE.findall(scan)) // 2,
            "prompt_tokens": request.prompt_tokens,
            "max_tokens": request.max_tokens or 0,
            "has_images": request.has_images,
            "wants_json": request.wants_json,
            "stream": request.stream,
        }
    )
