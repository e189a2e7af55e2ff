"""How a stage says "this request stops here"."""

from __future__ import annotations

from extproc.api.errors import ApiError


class Refusal(Exception):
    """Raised by a stage to end the pipeline with an OpenAI-style ``error``.

    ``rule_ids`` name the policy rules behind a policy refusal (empty otherwise).
    """

    def __init__(self, error: ApiError, rule_ids: tuple[str, ...] = ()) -> None:
        super().__init__(error.message)
        self.error = error
        self.rule_ids = rule_ids
