"""The ``spec.routing`` section of the RoutingConfig: strategy, artefacts, tiers, rules, A/B.

Paths: ``modelsDir`` is resolved against the directory of the YAML file (``base_dir`` of
``build_router``) when relative; when absent, the ``models/`` directory of the RouteIQ
source tree (next to the ``extproc`` package) is used, so a checkout or the container
image works with zero config. Artefact entries are directories below ``modelsDir``.

Tier names come from the leaf module ``extproc.vocabulary``, like the schema's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from extproc.config.base import Spec
from extproc.routing.categories import CATEGORIES, DEFAULT_CATEGORY_TIERS
from extproc.routing.quality_spec import CostQuality
from extproc.vocabulary import TIERS, TierName

TIER_ORDER = TIERS  # the name the routing code has always used


class SignalRule(Spec):
    """Move the tier when a named signal crosses a bound (booleans count as 0/1).

    ``{signal: agentic, atLeast: 1, minTier: standard}`` floors tool-using requests at
    ``standard``; ``maxTier`` caps instead. Both bounds given means both must hold.
    """

    signal: str = Field(min_length=1)
    at_least: float | None = None
    at_most: float | None = None
    min_tier: TierName | None = None
    max_tier: TierName | None = None

    @model_validator(mode="after")
    def _complete(self) -> SignalRule:
        if self.at_least is None and self.at_most is None:
            raise ValueError(f"rule on '{self.signal}' needs 'atLeast' or 'atMost'")
        if self.min_tier is None and self.max_tier is None:
            raise ValueError(f"rule on '{self.signal}' needs 'minTier' or 'maxTier'")
        return self

    def matches(self, value: float) -> bool:
        """Whether ``value`` is within the rule's bounds."""
        return (self.at_least is None or value >= self.at_least) and (
            self.at_most is None or value <= self.at_most
        )


class Experiment(Spec):
    """A/B split between strategies, sticky per key, optionally with a shadow arm.

    ``split`` maps strategy -> weight. ``stickyBy`` names the request header whose value is
    hashed to pick the arm (same value, same arm); without it, or when the header is
    missing, the prompt text is hashed. With ``shadow`` the arm declared after the assigned
    one (weight 0 allowed: ``{centroid: 100, knn: 0}`` shadows knn on all traffic) is
    computed too and returned as ``Classification.shadow``; it never changes the decision.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    split: dict[str, int] = Field(min_length=1)
    sticky_by: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    shadow: bool = False

    @field_validator("split")
    @classmethod
    def _weights(cls, value: dict[str, int]) -> dict[str, int]:
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("split weights must be >= 0 with a positive sum")
        return value

    @model_validator(mode="after")
    def _shadow_needs_two(self) -> Experiment:
        if self.shadow and len(self.split) < 2:
            raise ValueError(f"experiment '{self.name}': shadow mode needs two strategies")
        return self


class EmbeddingText(Spec):
    """What text is embedded (see docs/routing.md for the measurements behind defaults)."""

    include_system: bool = False
    max_tokens: int = Field(default=128, ge=8, le=512)
    # Which end of a long text is embedded: "head" keeps the first maxTokens tokens.
    keep: Literal["head", "tail"] = "head"
    # Characters kept (from the same end) before tokenising: bounds tokenizer cost on huge
    # prompts; 2000 characters hold well over 128 tokens of ordinary text.
    max_chars: int = Field(default=2000, ge=64)
    # "question": a few-shot prompt (worked examples, then the question) is embedded from
    # its last block, the question asked (extproc/routing/few_shot.py); "whole": as sent.
    few_shot: Literal["question", "whole"] = "question"


def default_rules(cost_quality: bool) -> tuple[SignalRule, ...]:
    """The signal rules a spec gets when it sets none.

    Tool use lifts a prompt to at least ``standard`` either way. Reasoning markers ("step
    by step", "prove") lift it to ``premium`` only under the category rule: the learned
    need model already weighs them, and a fixed lift would let any client buy premium by
    adding a phrase, past the share the operator set.
    """
    agentic = SignalRule(signal="agentic", at_least=1, min_tier="standard")
    if cost_quality:
        return (agentic,)
    return (agentic, SignalRule(signal="reasoning_markers", at_least=1, min_tier="premium"))


class RoutingSpec(Spec):
    """How ``auto`` and profile requests are classified."""

    strategy: str = Field(default="centroid", min_length=1)
    models_dir: str | None = None
    embedder: str = "embedder"
    artefacts: dict[str, str] = Field(
        default_factory=lambda: {
            "centroid": "centroid",
            "knn": "knn",
            "linear": "linear",
            "svm": "svm",
            "mlp": "mlp",
        }
    )
    scorer: str | None = "strongweak"
    category_tiers: dict[str, TierName] = Field(
        default_factory=lambda: dict(DEFAULT_CATEGORY_TIERS)  # type: ignore[arg-type]
    )
    # Unset: default_rules(costQuality is set), filled in by _default_signal_rules.
    signal_rules: tuple[SignalRule, ...] = Field(
        default=(),
        description="Rules that move the tier by a signal, in order. Unset: tool use lifts "
        "to at least standard; without costQuality, reasoning markers also lift to premium.",
    )
    experiments: tuple[Experiment, ...] = ()
    embedding: EmbeddingText = EmbeddingText()
    threads: int = Field(default=1, ge=1, le=64)
    # The learned cost-quality rule for auto (see quality_spec); null: category tiers.
    cost_quality: CostQuality | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_signal_rules(cls, data: Any) -> Any:
        if isinstance(data, dict) and "signal_rules" not in data and "signalRules" not in data:
            quality = data.get("cost_quality", data.get("costQuality"))
            data = {**data, "signal_rules": default_rules(quality is not None)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RoutingSpec:
        if len(self.experiments) > 1:
            raise ValueError("at most one routing experiment can run at a time")
        used = {self.strategy} | {s for e in self.experiments for s in e.split}
        missing = sorted(used - set(self.artefacts))
        if missing:
            raise ValueError(f"strategies without an entry in 'artefacts': {missing}")
        unknown = sorted(set(self.category_tiers) - set(CATEGORIES))
        if unknown:
            raise ValueError(
                f"categoryTiers names unknown categories {unknown}; known: {list(CATEGORIES)}"
            )
        if self.cost_quality is not None:
            bounded = set(self.cost_quality.floors) | set(self.cost_quality.ceilings)
            unknown = sorted(bounded - set(CATEGORIES))
            if unknown:
                raise ValueError(
                    f"costQuality floors/ceilings name unknown categories "
                    f"{unknown}; known: {list(CATEGORIES)}"
                )
        return self

    @property
    def strategies(self) -> tuple[str, ...]:
        """Every strategy that must be loaded: the default plus all experiment arms."""
        names = [self.strategy] + [s for e in self.experiments for s in e.split]
        return tuple(dict.fromkeys(names))
