"""Task categories of the zero-config router, their default tiers, and the data mapping.

The categories are what an operator reasons about when pricing traffic ("translation can
go to the cheap model, agentic tool use cannot"); the default tier of each is a starting
point the ``categoryTiers`` map of the RoutingSpec overrides.

``LLMROUTER_TASKS`` maps the 14 tasks of LLMRouter's query data onto the categories. The
mapping was fixed from what each benchmark asks for, before any accuracy was measured:
open-domain short questions are chat/simple QA, multiple-choice exam questions are
knowledge, GPQA and the logic-grid puzzles need multi-step reasoning, CommonGen asks for a
composed sentence (creative). Summarisation, translation and agentic tool use have no
LLMRouter task; their prototypes are the team's own prompts in models/prompts.jsonl.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

CATEGORIES: tuple[str, ...] = (
    "chat",
    "knowledge",
    "coding",
    "math",
    "reasoning",
    "creative",
    "summarisation",
    "translation",
    "agentic",
)

DEFAULT_CATEGORY_TIERS: Mapping[str, str] = MappingProxyType(
    {
        "chat": "eco",
        "knowledge": "eco",
        "coding": "standard",
        "math": "standard",
        "reasoning": "premium",
        "creative": "standard",
        "summarisation": "eco",
        "translation": "eco",
        "agentic": "standard",
    }
)

LLMROUTER_TASKS: Mapping[str, str] = MappingProxyType(
    {
        "natural_qa": "chat",
        "trivia_qa": "chat",
        "mmlu": "knowledge",
        "arc_challenge": "knowledge",
        "openbook_qa": "knowledge",
        "commonsense_qa": "knowledge",
        "mbpp": "coding",
        "human_eval": "coding",
        "math": "math",
        "gsm8k": "math",
        "agentverse-mgsm": "math",
        "gpqa": "reasoning",
        "agentverse-logicgrid": "reasoning",
        "commongen": "creative",
    }
)
