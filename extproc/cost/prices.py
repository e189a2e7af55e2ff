"""Pure price arithmetic: USD for a response's token usage at a backend's prices.

Prices are USD per million tokens (``Backend.cost``). Input tokens the provider served
from its prompt cache (``usage.cached_tokens``) are priced at ``cachedInputPerMTok``
when the backend sets it, else at the input price. Reasoning tokens are part of the
output count in OpenAI's usage (``completion_tokens`` includes them), so they are
priced as output and never added twice.
"""

from __future__ import annotations

from extproc.api.usage import Usage
from extproc.config.backend import Cost

PER_TOKEN = 1e-6  # prices are per million tokens


Rates = tuple[float, float, float]  # USD per token: input, cached input, output


def rates(price: Cost) -> Rates:
    """``price`` as per-token rates (computed once per backend and config version)."""
    cached = price.cached_input_per_m_tok
    if cached is None:
        cached = price.input_per_m_tok
    return (
        price.input_per_m_tok * PER_TOKEN,
        cached * PER_TOKEN,
        price.output_per_m_tok * PER_TOKEN,
    )


def rated_cost(r: Rates, usage: Usage) -> float:
    """USD for ``usage`` at per-token rates ``r``."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    return (usage.prompt_tokens - cached) * r[0] + cached * r[1] + usage.completion_tokens * r[2]


def usage_cost(price: Cost, usage: Usage) -> float:
    """USD for ``usage`` at ``price``: uncached input + cached input + output."""
    return rated_cost(rates(price), usage)
