"""Pure price arithmetic: USD for a response's token usage at a backend's prices.

Prices are USD per million tokens (``Backend.cost``). Input tokens the provider served
from its prompt cache (``usage.cached_tokens``) are priced at ``cachedInputPerMTok``
when the backend sets it, else at the input price. Reasoning tokens are part of the
output count in OpenAI's usage (``completion_tokens`` includes them), so they are
priced as output and never added twice.
"""

from __future__ import annotations

from extproc.api.usage import Usage
from extproc.config.schema import Cost

PER_TOKEN = 1e-6  # prices are per million tokens


def usage_cost(price: Cost, usage: Usage) -> float:
    """USD for ``usage`` at ``price``: uncached input + cached input + output."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    cached_price = price.cached_input_per_m_tok
    if cached_price is None:
        cached_price = price.input_per_m_tok
    return (
        (usage.prompt_tokens - cached) * price.input_per_m_tok
        + cached * cached_price
        + usage.completion_tokens * price.output_per_m_tok
    ) * PER_TOKEN
