"""``spec.routing.costQuality``: the learned cost–quality rule for ``auto`` and its knobs.

The quality model predicts, per request, a *need* in [0, 1]: how much a stronger tier is
expected to improve the answer (see docs/routing.md for what it was trained on). The rule
sends a request to the cheapest tier whose bar its need does not exceed:

* need >= premium bar -> ``premium``
* need <  eco bar     -> ``eco``
* otherwise           -> ``standard``

The bars are set in the operator's units: ``premiumShare`` is the fraction of traffic
that may go to premium, ``ecoShare`` the fraction sent down to eco. At snapshot build each
share becomes a raw bar: the premium bar is the ``1 - premiumShare`` quantile of the need
on a reference prompt set, the eco bar the ``ecoShare`` quantile (the quantiles shipped
with the model, or computed from ``referencePrompts``). ``threshold`` / ``ecoThreshold``
set raw bars instead. With ``calibration.source: traffic`` (the default) the share bars
then follow the needs of recent traffic once enough of it is seen (:class:`Calibration`),
so that the share holds for the traffic served, not only for traffic like the reference.
When the bars cross (shares summing past 1), premium wins.
``profiles`` holds other points of the same curve for the ``eco`` and ``premium``
profiles (and may override ``auto``). ``floors`` / ``ceilings`` bound the tier per
category (e.g. ``reasoning: premium`` floors every reasoning prompt).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic.alias_generators import to_camel

from extproc.config.base import Spec

TierBound = Literal["free", "eco", "standard", "premium"]
ProfileName = Literal["auto", "eco", "premium"]

# The shipped default operating point of ``auto`` (measured: docs/routing.md).
DEFAULT_PREMIUM_SHARE = 0.3
DEFAULT_ECO_SHARE = 0.3


class QualityKnob(Spec):
    """One operating point: how much traffic may go to premium and how much down to eco."""

    premium_share: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Fraction of traffic that may go to premium (see calibration).",
    )
    threshold: float | None = Field(
        None, description="Raw premium bar on the need (instead of premiumShare)."
    )
    eco_share: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Fraction of traffic (lowest need first) sent down to eco.",
    )
    eco_threshold: float | None = Field(
        None, description="Raw eco bar on the need (instead of ecoShare)."
    )

    @model_validator(mode="after")
    def _exclusive(self) -> QualityKnob:
        if self.premium_share is not None and self.threshold is not None:
            raise ValueError("set premiumShare or threshold, not both")
        if self.eco_share is not None and self.eco_threshold is not None:
            raise ValueError("set ecoShare or ecoThreshold, not both")
        return self

    def over(self, base: QualityKnob) -> QualityKnob:
        """This knob with unset fields taken from ``base`` (profile over the default)."""
        premium = (self.premium_share, self.threshold)
        eco = (self.eco_share, self.eco_threshold)
        if premium == (None, None):
            premium = (base.premium_share, base.threshold)
        if eco == (None, None):
            eco = (base.eco_share, base.eco_threshold)
        return QualityKnob(
            premium_share=premium[0], threshold=premium[1], eco_share=eco[0], eco_threshold=eco[1]
        )


class Calibration(Spec):
    """Where the share knobs take their bars from.

    ``reference``: the reference distribution only (the model's shipped quantiles or
    ``referencePrompts``), fixed for the snapshot: the same prompt always gets the same
    tier, and the share holds for traffic like the reference. ``traffic``: the bars follow
    the needs of the last ``window`` distinct prompts this process classified, so the
    share holds for the traffic actually served; until ``warmup`` of them are in, the
    reference bars apply. Raw ``threshold`` / ``ecoThreshold`` bars never move.
    """

    source: Literal["reference", "traffic"] = Field(
        "traffic", description="reference: fixed bars; traffic: bars follow recent traffic."
    )
    window: int = Field(
        2000, ge=10, le=100_000, description="Distinct recent prompts the traffic bars use."
    )
    warmup: int = Field(
        200,
        ge=10,
        le=100_000,
        description="Prompts seen before the traffic bars replace the reference ones.",
    )

    @model_validator(mode="after")
    def _warmup_fits(self) -> Calibration:
        if self.warmup > self.window:
            raise ValueError(f"calibration warmup {self.warmup} exceeds its window {self.window}")
        return self


def _default_ceilings() -> dict[str, TierBound]:
    return {"chat": "eco"}


def _default_profiles() -> dict[ProfileName, QualityKnob]:
    return {
        "eco": QualityKnob(premium_share=0.05, eco_share=0.7),
        "premium": QualityKnob(premium_share=1.0, eco_share=0.0),
    }


class CostQuality(QualityKnob):
    """The learned rule: the default knob (``auto``), the model, calibration, bounds."""

    premium_share: float | None = Field(
        DEFAULT_PREMIUM_SHARE,
        ge=0.0,
        le=1.0,
        description="Fraction of auto traffic that may go to premium: the main knob (of "
        "recent traffic, or of the reference prompts: see calibration). Set null to use "
        "threshold instead.",
    )
    eco_share: float | None = Field(
        DEFAULT_ECO_SHARE,
        ge=0.0,
        le=1.0,
        description="Fraction of auto traffic (lowest need first) sent down to eco.",
    )
    model: str = Field(
        "quality", min_length=1, description="Quality model directory below modelsDir."
    )
    reference_prompts: str | None = Field(
        None,
        description='JSONL of {"prompt"} lines (relative to the config file) to calibrate '
        "the shares on at snapshot build, instead of the model's shipped quantiles.",
    )
    calibration: Calibration = Field(
        default_factory=Calibration,
        description="Where the shares' bars come from: fixed reference or recent traffic.",
    )
    profiles: dict[ProfileName, QualityKnob] = Field(
        default_factory=_default_profiles,
        description="Per-profile operating points on the same curve (unset fields: default).",
    )
    floors: dict[str, TierBound] = Field(
        default_factory=dict, description="Category -> lowest tier it may get."
    )
    ceilings: dict[str, TierBound] = Field(
        default_factory=_default_ceilings,
        description="Category -> highest tier it may get (default: small talk and one-fact "
        "lookups stay on eco; the need model over-rates very short chat, docs/routing.md).",
    )

    @model_validator(mode="before")
    @classmethod
    def _raw_replaces_share(cls, data: Any) -> Any:
        """A raw bar given without its share replaces the default share."""
        if isinstance(data, dict):
            data = dict(data)
            for raw, share in (("threshold", "premium_share"), ("eco_threshold", "eco_share")):
                camel = to_camel(share)
                if data.get(raw, data.get(to_camel(raw))) is not None and not (
                    share in data or camel in data
                ):
                    data[share] = None
        return data

    @model_validator(mode="after")
    def _one_of_each(self) -> CostQuality:
        if self.premium_share is None and self.threshold is None:
            raise ValueError("costQuality needs premiumShare or threshold")
        return self

    def knob(self, profile: str | None) -> QualityKnob:
        """The operating point of ``profile`` (None or unknown: the default ``auto`` one)."""
        base = QualityKnob(
            premium_share=self.premium_share,
            threshold=self.threshold,
            eco_share=self.eco_share,
            eco_threshold=self.eco_threshold,
        )
        profiles: Mapping[str, QualityKnob] = {str(k): v for k, v in self.profiles.items()}
        override = profiles.get(profile) if profile else None
        return base if override is None else override.over(base)
