"""The learned cost–quality rule at serving time: need model, calibration, tier bars.

``QualityRule`` is built once per snapshot (:func:`build_quality_rule`): it loads the
need model (a verified ``.npz`` + manifest of kind ``quality``, or a strong/weak scorer
whose ``strong`` probability is used as the need), calibrates every profile's knob into
raw bars against a reference distribution of needs (the quantiles shipped with the model,
or the needs of the operator's ``referencePrompts``), and then only does numpy per
request. ``premiumShare`` s becomes the premium bar ``quantile(needs, 1 - s)``, so about a
fraction s of traffic like the reference set clears it; ``ecoShare`` e becomes the eco
bar ``quantile(needs, e)``. With ``calibration.source: traffic`` the same shares are
read from the needs of recent traffic once enough is seen (:class:`NeedWindow`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from extproc.routing.artefacts import ArtefactError, Manifest, load_manifest, load_npz
from extproc.routing.classifiers import Matrix
from extproc.routing.need_window import NeedWindow
from extproc.routing.quality_features import FEATURE_NAMES, feature_matrix
from extproc.routing.quality_spec import CostQuality, QualityKnob
from extproc.routing.strategies import LoadedModel, model_from_arrays

Needs = npt.NDArray[np.float64]
PROFILES: tuple[str, ...] = ("auto", "eco", "premium")
# The fewest prompts a share is calibrated on (reference prompts, or a scored batch).
MIN_CALIBRATION = 20


class NeedModel(Protocol):
    """Maps embeddings (and the embedded texts) to a need in [0, 1] per row."""

    def needs(self, x: Matrix, texts: Sequence[str]) -> Needs: ...


@dataclass(frozen=True, slots=True)
class LearnedNeed:
    """Standardised ``[embedding, text features]`` through dense layers (ReLU between).

    ``output`` is ``sigmoid`` (a probability-like head) or ``clip`` (a regression head
    clipped to [0, 1]). With one layer this is logistic or ridge regression.
    """

    mean: Matrix
    scale: Matrix
    weights: tuple[Matrix, ...]
    biases: tuple[Matrix, ...]
    output: str
    use_embedding: bool

    def needs(self, x: Matrix, texts: Sequence[str]) -> Needs:
        parts = [x] if self.use_embedding else []
        parts.append(feature_matrix(texts))
        h = (np.concatenate(parts, axis=1) - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        z = (h @ self.weights[-1] + self.biases[-1])[:, 0].astype(np.float64)
        if self.output == "sigmoid":
            out: Needs = 1.0 / (1.0 + np.exp(-z))
            return out
        return np.clip(z, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class ScorerNeed:
    """A strong/weak category scorer used as a need model: P(strong)."""

    loaded: LoadedModel

    def needs(self, x: Matrix, texts: Sequence[str]) -> Needs:
        column = self.loaded.model.classes.index("strong")
        return self.loaded.model.scores(x)[:, column].astype(np.float64)


def _f32(a: npt.NDArray[Any]) -> Matrix:
    out: Matrix = np.ascontiguousarray(a, dtype=np.float32)
    return out


def learned_need(data: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> LearnedNeed:
    """Build a :class:`LearnedNeed` from manifest fields and arrays (load and train share it)."""
    layers = int(data["layers"])
    return LearnedNeed(
        mean=_f32(arrays["mean"]),
        scale=_f32(arrays["scale"]),
        weights=tuple(_f32(arrays[f"w{i}"]) for i in range(layers)),
        biases=tuple(_f32(arrays[f"b{i}"]) for i in range(layers)),
        output=str(data.get("output", "sigmoid")),
        use_embedding=bool(data.get("embedding", True)),
    )


@dataclass(frozen=True, slots=True)
class LoadedNeed:
    """A verified need model plus the reference quantiles it shipped with (maybe none)."""

    model: NeedModel
    manifest: Manifest
    reference: Needs | None


def load_need_model(directory: Path, dimensions: int) -> LoadedNeed:
    """Verify and load ``directory`` (kind ``quality``, or a scorer with a strong class)."""
    manifest = load_manifest(directory / "manifest.json")
    data = manifest.data
    arrays = load_npz(manifest, "weights.npz")
    model: NeedModel
    if data.get("kind") == "quality":
        if tuple(data.get("features", ())) != FEATURE_NAMES:
            raise ArtefactError(
                f"{manifest.path}: built with features {data.get('features')}, "
                f"this RouteIQ computes {list(FEATURE_NAMES)}: retrain it"
            )
        try:
            model = learned_need(data, arrays)
        except (KeyError, ValueError) as exc:
            raise ArtefactError(f"{directory}: weights do not fit a quality model: {exc}") from None
    else:
        classes = data.get("classes")
        if not isinstance(classes, list) or "strong" not in classes:
            raise ArtefactError(
                f"{manifest.path}: not a quality model (kind 'quality') nor a "
                "scorer with a 'strong' class"
            )
        built = model_from_arrays(str(data["strategy"]), classes, arrays, data.get("params", {}))
        model = ScorerNeed(LoadedModel(built, manifest))
    try:
        probe = model.needs(np.zeros((1, dimensions), dtype=np.float32), ["probe"])
    except (KeyError, ValueError) as exc:
        raise ArtefactError(f"{directory}: weights do not fit the embedder: {exc}") from None
    if probe.shape != (1,):
        raise ArtefactError(f"{directory}: need model yields shape {probe.shape}, not (1,)")
    ref = arrays.get("reference_needs")
    reference = None if ref is None else np.sort(np.asarray(ref, dtype=np.float64))
    return LoadedNeed(model, manifest, reference)


def read_reference_prompts(path: Path) -> list[str]:
    """Prompts of a JSONL file of ``{"prompt": ...}`` lines (``query``/``text`` accepted)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ArtefactError(f"costQuality.referencePrompts {path}: {exc}") from None
    prompts: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ArtefactError(f"{path}:{number}: not a JSON line") from None
        text = next(
            (
                row[k]
                for k in ("prompt", "query", "text")
                if isinstance(row, dict) and isinstance(row.get(k), str)
            ),
            None,
        )
        if text is None:
            raise ArtefactError(f"{path}:{number}: needs a string 'prompt'")
        prompts.append(text)
    if len(prompts) < MIN_CALIBRATION:
        raise ArtefactError(
            f"{path}: {len(prompts)} prompts; calibration needs at least {MIN_CALIBRATION}"
        )
    return prompts


@dataclass(frozen=True, slots=True)
class Bars:
    """Raw bars of one operating point, with the shares they were calibrated from."""

    premium: float
    eco: float
    premium_share: float | None
    eco_share: float | None

    def tier(self, need: float) -> tuple[str, str]:
        """The cheapest tier ``need`` clears, and why (premium wins over a crossed eco bar)."""
        if need >= self.premium:
            return "premium", f"need {need:.3f} >= premium bar {self.premium:.3f}: premium"
        if need < self.eco:
            return "eco", f"need {need:.3f} < eco bar {self.eco:.3f}: eco"
        return "standard", (
            f"eco bar {self.eco:.3f} <= need {need:.3f} < premium bar {self.premium:.3f}: standard"
        )


Quantile = Callable[[float], float]


def reference_quantile(reference: Needs) -> Quantile:
    """The quantile function of a reference distribution of needs (numpy's linear)."""
    return lambda q: float(np.quantile(reference, q))


def share_bar(quantile: Quantile, share: float, top: bool) -> float:
    """Bar that ``share`` of the distribution clears from the top (premium) or falls under."""
    if share <= 0.0:
        return float("inf") if top else float("-inf")
    if share >= 1.0:
        return float("-inf") if top else float("inf")
    return quantile(1.0 - share if top else share)


def calibrate(knob: QualityKnob, quantile: Quantile) -> Bars:
    """Raw bars of ``knob`` (a raw threshold is kept as is; a share uses ``quantile``)."""
    if knob.threshold is not None:
        premium = float(knob.threshold)
    else:
        premium = share_bar(quantile, knob.premium_share or 0.0, top=True)
    if knob.eco_threshold is not None:
        eco = float(knob.eco_threshold)
    else:
        eco = share_bar(quantile, knob.eco_share or 0.0, top=False)
    return Bars(premium, eco, knob.premium_share, knob.eco_share)


@dataclass(frozen=True, slots=True)
class QualityVerdict:
    """What the cost–quality rule concluded for one request (explained in decisions).

    ``need`` in [0, 1] is the predicted need for a stronger tier; ``bars`` the raw bars of
    the profile's operating point (``premium``, ``eco``); ``tier`` the tier the rule chose
    before category floors/ceilings and signal rules; ``reason`` says why in words.
    """

    need: float
    bars: Mapping[str, float]
    tier: str
    reason: str
    profile: str
    premium_share: float | None
    calibration: str = "reference"


@dataclass(frozen=True, slots=True)
class QualityRule:
    """Need model + reference distribution + calibrated bars of every profile.

    ``bars`` are the reference bars. ``window`` (``calibration.source: traffic``) holds
    the needs of recent distinct prompts; once warm, share bars are read from it per
    request instead (raw thresholds stay as set).
    """

    spec: CostQuality
    need: LoadedNeed
    reference: Needs
    bars: Mapping[str, Bars]
    knobs: Mapping[str, QualityKnob]
    window: NeedWindow | None = field(default=None, compare=False)

    def bars_for(self, profile: str | None) -> tuple[str, Bars, str]:
        """The profile's name, its bars now, and where they came from."""
        name = str(profile if profile in self.bars else "auto")
        window = self.window
        if window is not None and window.warm:
            return name, calibrate(self.knobs[name], window.quantile), "traffic"
        return name, self.bars[name], "reference"

    def verdict(self, need: float, profile: str | None) -> QualityVerdict:
        name, bars, source = self.bars_for(profile)
        tier, reason = bars.tier(need)
        if source == "traffic":
            reason = f"{reason} (bars from recent traffic)"
        return QualityVerdict(
            need=need,
            bars=MappingProxyType({"premium": bars.premium, "eco": bars.eco}),
            tier=tier,
            reason=reason,
            profile=name,
            premium_share=bars.premium_share,
            calibration=source,
        )

    def observe(self, need: float) -> None:
        """Count one new prompt's need towards the traffic bars (no-op for reference)."""
        if self.window is not None:
            self.window.observe(need)

    def continuing(self, previous: QualityRule | None) -> QualityRule:
        """This rule serving on with ``previous``'s traffic window (a reload), when both
        calibrate on traffic with the same window and the same need model (weights'
        sha256): the needs it holds still mean the same. Otherwise this rule as is."""
        if (
            previous is None
            or self.window is None
            or previous.window is None
            or (self.window.size, self.window.warmup)
            != (previous.window.size, previous.window.warmup)
            or self.need.manifest.data.get("files") != previous.need.manifest.data.get("files")
        ):
            return self
        return replace(self, window=previous.window)

    def with_spec(self, spec: CostQuality) -> QualityRule:
        """The same model and reference, recalibrated for ``spec``'s knobs (and a new
        traffic window when ``spec`` asks for one)."""
        return _rule(spec, self.need, self.reference)

    def calibrated_on(self, needs: Needs) -> QualityRule:
        """Fixed bars calibrated on ``needs`` (a whole batch seen at once, as the traffic
        bars would see it), with no window."""
        fixed = self.spec.model_copy(
            update={"calibration": self.spec.calibration.model_copy(update={"source": "reference"})}
        )
        return _rule(fixed, self.need, np.sort(np.asarray(needs, dtype=np.float64)))


def _rule(spec: CostQuality, need: LoadedNeed, reference: Needs) -> QualityRule:
    knobs = MappingProxyType({p: spec.knob(p) for p in PROFILES})
    quantile = reference_quantile(reference)
    bars = MappingProxyType({p: calibrate(k, quantile) for p, k in knobs.items()})
    cal = spec.calibration
    window = NeedWindow(cal.window, cal.warmup) if cal.source == "traffic" else None
    return QualityRule(spec, need, reference, bars, knobs, window)


def build_quality_rule(spec: CostQuality, need: LoadedNeed, reference: Needs | None) -> QualityRule:
    """Calibrate ``spec`` on ``reference`` needs (None: the model's shipped quantiles)."""
    ref = reference if reference is not None else need.reference
    if ref is None or ref.size == 0:
        raise ArtefactError(
            f"{need.manifest.path}: the model ships no reference quantiles; "
            "set spec.routing.costQuality.referencePrompts"
        )
    return _rule(spec, need, np.sort(np.asarray(ref, dtype=np.float64)))
