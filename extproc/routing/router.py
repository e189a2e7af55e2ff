"""The router: one embedding per request, a category, a tier and a strong-model score.

``build_router`` runs once per config snapshot: it resolves the artefact paths, verifies
every hash, loads the embedder and the classifiers of the default strategy and of every
experiment arm, checks that every category has a tier, and embeds one text so that the
first real request does not pay onnxruntime's lazy initialisation. ``Router.classify`` is
then pure CPU work on immutable data (no I/O, no logging, no randomness), safe to call from
several threads; it is synchronous (about 1-15 ms of CPU, see docs/routing.md), so an
asyncio server may want to call it in an executor for long prompts.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

import extproc
from extproc.api.openai import ParsedRequest
from extproc.routing.ab import Splitter
from extproc.routing.artefacts import ArtefactError, check_embedder
from extproc.routing.categories import DEFAULT_CATEGORY_TIERS
from extproc.routing.classifiers import Matrix
from extproc.routing.embedders import (
    DEFAULT_CACHE_ENTRIES,
    TextEmbedder,
    load_text_embedder,
    timed_embed,
)
from extproc.routing.few_shot import asked_question
from extproc.routing.quality import (
    QualityRule,
    QualityVerdict,
    build_quality_rule,
    load_need_model,
    read_reference_prompts,
)
from extproc.routing.signals import SignalValue, compute_signals
from extproc.routing.spec import TIER_ORDER, EmbeddingText, RoutingSpec, SignalRule
from extproc.routing.strategies import LoadedModel, load_model
from extproc.routing.text_cache import TextCache

TOP_SCORES = 3


@dataclass(frozen=True, slots=True)
class Classification:
    """What the router concluded about one request (all of it goes into the explanation).

    ``score`` in [0, 1] is how much the prompt needs a strong model (the strong/weak
    scorer's probability when one is configured, else the tier's position). ``scores``
    holds the top category scores. ``variant`` is the experiment arm (None outside
    experiments); ``shadow`` the shadow arm's own classification, never acted upon.
    ``rules`` names the signal rules that moved the tier. ``quality`` is the cost–quality
    rule's verdict (need, bars, the tier it chose and why) when ``costQuality`` is on;
    ``tier`` is then that tier after category floors/ceilings and signal rules: the tier
    the request needs (the target tier).
    """

    category: str
    tier: str
    score: float
    scores: Mapping[str, float]
    strategy: str
    variant: str | None
    signals: Mapping[str, SignalValue]
    shadow: Classification | None = None
    embed_ms: float = 0.0
    experiment: str | None = None
    rules: tuple[str, ...] = field(default_factory=tuple)
    quality: QualityVerdict | None = None

    @property
    def shadow_disagrees(self) -> bool:
        """True when a shadow arm ran and picked another category or tier."""
        return self.shadow is not None and (
            self.shadow.category != self.category or self.shadow.tier != self.tier
        )


def default_models_dir() -> Path:
    """Where the routing artefacts are when ``modelsDir`` is not set.

    The ``models/`` directory next to the ``extproc`` package when there is one (a
    checkout, an editable install, an image that links it), else the artefacts a wheel
    installs as the ``routeiq_models`` package. When neither exists the source-tree path
    is returned, and loading it fails with a ConfigError that names it.
    """
    source = Path(extproc.__file__).resolve().parent.parent / "models"
    if source.is_dir():
        return source
    shipped = importlib.util.find_spec("routeiq_models")
    locations = list(shipped.submodule_search_locations or ()) if shipped is not None else []
    return Path(locations[0]) if locations else source


def resolve_models_dir(spec: RoutingSpec, base_dir: Path) -> Path:
    """``modelsDir`` relative to ``base_dir`` (the YAML's directory), or the default."""
    if spec.models_dir is None:
        return default_models_dir()
    path = Path(spec.models_dir)
    return path if path.is_absolute() else base_dir / path


def cut(text: str, options: EmbeddingText) -> str:
    """``text`` cut to ``max_chars`` from the end ``keep`` names (tokens are cut later)."""
    if options.keep == "tail":
        return text[-options.max_chars :]
    return text[: options.max_chars]


def question(text: str, options: EmbeddingText) -> str:
    """``text``, or only the question it asks when it is a few-shot prompt (``fewShot``)."""
    return asked_question(text, options.max_chars) if options.few_shot == "question" else text


def embedding_text(request: ParsedRequest, options: EmbeddingText) -> str:
    """The text that is embedded: the last user turn (only the question asked when it is
    a few-shot prompt and ``fewShot`` is ``question``; after the system prompt when
    ``includeSystem``), cut by :func:`cut`."""
    text = question(request.last_user_text, options)
    if options.include_system and request.system_text:
        text = f"{request.system_text}\n{text}"
    return cut(text, options)


def _describe(rule: SignalRule) -> str:
    bounds = []
    if rule.at_least is not None:
        bounds.append(f">={rule.at_least:g}")
    if rule.at_most is not None:
        bounds.append(f"<={rule.at_most:g}")
    moves = [
        f"min {rule.min_tier}" if rule.min_tier else "",
        f"max {rule.max_tier}" if rule.max_tier else "",
    ]
    return f"{rule.signal}{','.join(bounds)}->{' '.join(m for m in moves if m)}"


@dataclass(frozen=True, slots=True)
class Router:
    """Built by :func:`build_router`; immutable and shared by every request of a snapshot."""

    spec: RoutingSpec
    embedder: TextEmbedder
    models: Mapping[str, LoadedModel]
    scorer: LoadedModel | None
    tiers: Mapping[str, str]
    splitter: Splitter | None
    rule_names: tuple[str, ...]
    quality: QualityRule | None = None
    # The need of recently seen texts (like the embedder's vector cache): a repeated
    # prompt then skips the need model's features as well as the embedding. Shared by
    # ``with_knob`` copies, whose need model is the same.
    needs_seen: TextCache[float] = field(
        default_factory=lambda: TextCache(DEFAULT_CACHE_ENTRIES), compare=False
    )
    # The category and top scores of recently seen texts, per strategy: they depend on
    # the embedding alone, so a repeated prompt skips the classifier too.
    scores_seen: TextCache[tuple[str, Mapping[str, float]]] = field(
        default_factory=lambda: TextCache(DEFAULT_CACHE_ENTRIES), compare=False
    )

    @property
    def sticky_by(self) -> str | None:
        """The header whose value the caller should pass as ``sticky_key`` (or None)."""
        return self.spec.experiments[0].sticky_by if self.spec.experiments else None

    def classify(
        self,
        request: ParsedRequest,
        sticky_key: str | None = None,
        *,
        profile: str | None = None,
        text: str | None = None,
    ) -> Classification:
        """Classify one request; ``sticky_key`` pins its experiment arm (None: prompt hash);
        ``profile`` (``auto``, ``eco``, ``premium``) picks the cost–quality operating point.
        ``text`` is ``embedding_text(request, spec.embedding)`` when the caller already
        worked it out."""
        if text is None:
            text = embedding_text(request, self.spec.embedding)
        vector, embed_ms = timed_embed(self.embedder, text)
        x: Matrix = vector[None, :]
        need = self.needs_seen.get(text)
        if need is None:
            need = float(self._needs(x, [text])[0])
            self.needs_seen.put(text, need)
            if self.quality is not None:
                self.quality.observe(need)
        return self._finish(request, text, x, need, embed_ms, sticky_key, profile)

    def classify_batch(
        self, requests: Sequence[ParsedRequest], profile: str | None = None
    ) -> list[Classification]:
        """Classify many requests with one batched embedding (scoring, eval, replay).

        Same results as ``classify`` up to int8 batch effects on the embedding (cosine >=
        0.99); ``embed_ms`` is the batch's embedding time divided by its size.
        """
        if not requests:
            return []
        texts = [embedding_text(r, self.spec.embedding) for r in requests]
        start = time.perf_counter()
        xs = self.embedder.embed_many(texts)
        embed_ms = (time.perf_counter() - start) * 1000.0 / len(texts)
        needs = self._needs(xs, texts)
        return [
            self._finish(r, t, xs[i : i + 1], needs[i], embed_ms, None, profile)
            for i, (r, t) in enumerate(zip(requests, texts, strict=True))
        ]

    def with_knob(
        self, premium_share: float | None = None, threshold: float | None = None
    ) -> Router:
        """A copy whose ``auto`` operating point is ``premium_share`` (or a raw
        ``threshold``), recalibrated on the same reference needs (nothing is re-embedded).
        Other profiles keep their own points. Raises ``ValueError`` when the cost–quality
        rule is off or both/neither knobs are given."""
        if self.quality is None or self.spec.cost_quality is None:
            raise ValueError("the cost-quality rule is off (spec.routing.costQuality is null)")
        if (premium_share is None) == (threshold is None):
            raise ValueError("give exactly one of premium_share or threshold")
        current = self.spec.cost_quality
        profiles = {k: v for k, v in current.profiles.items() if k != "auto"}
        cq = current.model_validate(
            {
                **current.model_dump(exclude={"profiles"}),
                "premium_share": premium_share,
                "threshold": threshold,
                "profiles": profiles,
            }
        )
        spec = self.spec.model_copy(update={"cost_quality": cq})
        return replace(self, spec=spec, quality=self.quality.with_spec(cq))

    def _needs(self, x: Matrix, texts: Sequence[str]) -> npt.NDArray[np.float64]:
        if self.quality is not None:
            return self.quality.need.model.needs(x, texts)
        if self.scorer is None:
            return np.full(len(texts), -1.0)
        column = self.scorer.model.classes.index("strong")
        return self.scorer.model.scores(x)[:, column].astype(np.float64)

    def _finish(
        self,
        request: ParsedRequest,
        text: str,
        x: Matrix,
        need: float,
        embed_ms: float,
        sticky_key: str | None,
        profile: str | None,
    ) -> Classification:
        signals = dict(compute_signals(request, text))
        signals["score"] = float(need)
        verdict = None if self.quality is None else self.quality.verdict(float(need), profile)
        frozen = MappingProxyType(signals)
        if self.splitter is None:
            result = self._classify(x, text, self.spec.strategy, frozen, verdict)
            return replace(result, embed_ms=embed_ms)
        arm = self.splitter.assign(sticky_key if sticky_key is not None else text)
        shadow = (
            None if arm.shadow is None else self._classify(x, text, arm.shadow, frozen, verdict)
        )
        result = self._classify(x, text, arm.arm, frozen, verdict)
        return replace(
            result, variant=arm.arm, experiment=arm.experiment, shadow=shadow, embed_ms=embed_ms
        )

    def _base_rank(self, category: str, verdict: QualityVerdict | None) -> tuple[int, list[str]]:
        """The tier before signal rules: the cost–quality rule's within category bounds,
        or the category's tier when the rule is off."""
        if verdict is None or self.spec.cost_quality is None:
            return TIER_ORDER.index(self.tiers[category]), []
        rank = TIER_ORDER.index(verdict.tier)
        fired = []
        floor = self.spec.cost_quality.floors.get(category)
        if floor is not None and TIER_ORDER.index(floor) > rank:
            rank = TIER_ORDER.index(floor)
            fired.append(f"category {category}->floor {floor}")
        ceiling = self.spec.cost_quality.ceilings.get(category)
        if ceiling is not None and TIER_ORDER.index(ceiling) < rank:
            rank = TIER_ORDER.index(ceiling)
            fired.append(f"category {category}->ceiling {ceiling}")
        return rank, fired

    def _category(self, x: Matrix, text: str, strategy: str) -> tuple[str, Mapping[str, float]]:
        """The category of ``x`` (the embedding of ``text``) and its top scores, under
        ``strategy``; remembered per text (``scores_seen``)."""
        key = text if strategy == self.spec.strategy else f"{strategy}\x00{text}"
        seen = self.scores_seen.get(key)
        if seen is not None:
            return seen
        model = self.models[strategy].model
        probs = model.scores(x)[0]
        order = np.argsort(-probs)[:TOP_SCORES]
        scores = MappingProxyType({model.classes[int(i)]: float(probs[i]) for i in order})
        seen = (model.classes[int(order[0])], scores)
        self.scores_seen.put(key, seen)
        return seen

    def _classify(
        self,
        x: Matrix,
        text: str,
        strategy: str,
        signals: Mapping[str, SignalValue],
        verdict: QualityVerdict | None,
    ) -> Classification:
        category, scores = self._category(x, text, strategy)
        rank, fired = self._tier(category, signals, verdict)
        score = float(signals["score"])
        if score < 0:  # no need model nor scorer configured: the tier's position is the need
            score = rank / (len(TIER_ORDER) - 1)
        return Classification(
            category=category,
            tier=TIER_ORDER[rank],
            score=min(1.0, max(0.0, score)),
            scores=scores,
            strategy=strategy,
            variant=None,
            signals=signals,
            rules=tuple(fired),
            quality=verdict,
        )

    def _tier(
        self, category: str, signals: Mapping[str, SignalValue], verdict: QualityVerdict | None
    ) -> tuple[int, list[str]]:
        """The tier's rank: the base rank, then the signal rules in order (and which fired)."""
        rank, fired = self._base_rank(category, verdict)
        for rule, name in zip(self.spec.signal_rules, self.rule_names, strict=True):
            value = signals.get(rule.signal)
            if value is None or not rule.matches(float(value)):
                continue
            before = rank
            if rule.min_tier is not None:
                rank = max(rank, TIER_ORDER.index(rule.min_tier))
            if rule.max_tier is not None:
                rank = min(rank, TIER_ORDER.index(rule.max_tier))
            if rank != before:
                fired.append(name)
        return rank, fired

    def retier(self, c: Classification, profile: str | None = None) -> Classification:
        """``c`` (classified by a router with the same models) with its cost-quality
        verdict and tier taken again under this router's bars (at ``profile``, default:
        the one ``c`` was classified at); nothing is re-embedded. A shadow arm's result is
        kept as it was; a classification without a verdict is returned as is."""
        if self.quality is None or c.quality is None:
            return c
        verdict = self.quality.verdict(c.quality.need, profile or c.quality.profile)
        rank, fired = self._tier(c.category, c.signals, verdict)
        return replace(c, tier=TIER_ORDER[rank], rules=tuple(fired), quality=verdict)

    def continuing(self, previous: Router | None) -> Router:
        """This router with ``previous``'s traffic window when its needs still apply
        (same embedder and embedded text, same need model: :meth:`QualityRule.continuing`),
        so that a reload does not send the bars back to the reference ones."""
        if (
            previous is None
            or self.quality is None
            or (self.spec.models_dir, self.spec.embedder, self.spec.embedding)
            != (previous.spec.models_dir, previous.spec.embedder, previous.spec.embedding)
        ):
            return self
        kept = self.quality.continuing(previous.quality)
        return self if kept is self.quality else replace(self, quality=kept)

    def calibrated_on(self, needs: npt.NDArray[np.float64]) -> Router:
        """A copy whose share bars are fixed on ``needs`` (a batch taken as the traffic
        a ``calibration: traffic`` router would have seen); the same router without a
        cost-quality rule."""
        if self.quality is None:
            return self
        return replace(self, quality=self.quality.calibrated_on(needs))


def _quality_rule(
    spec: RoutingSpec, root: Path, base_dir: Path, embedder: TextEmbedder
) -> QualityRule | None:
    cq = spec.cost_quality
    if cq is None:
        return None
    need = load_need_model(root / cq.model, embedder.dimensions)
    check_embedder(need.manifest, embedder.fingerprint)
    reference = None
    if cq.reference_prompts is not None:
        path = Path(cq.reference_prompts)
        texts = [
            cut(question(t, spec.embedding), spec.embedding)
            for t in read_reference_prompts(path if path.is_absolute() else base_dir / path)
        ]
        reference = need.model.needs(embedder.embed_many(texts), texts)
    return build_quality_rule(cq, need, reference)


def build_router(spec: RoutingSpec, base_dir: Path) -> Router:
    """Load, verify and warm everything ``spec`` needs; raises ``ArtefactError`` (a
    ``ConfigError``) with the offending path when an artefact is missing or tampered."""
    root = resolve_models_dir(spec, base_dir)
    if not root.is_dir():
        raise ArtefactError(
            f"routing modelsDir {root} does not exist (set spec.routing.modelsDir, relative "
            "to the config file, to a directory holding the embedder and classifiers)"
        )
    embedder = load_text_embedder(
        root / spec.embedder / "manifest.json",
        max_tokens=spec.embedding.max_tokens,
        threads=spec.threads,
        keep=spec.embedding.keep,
    )
    models = {}
    for strategy in spec.strategies:
        loaded = load_model(root / spec.artefacts[strategy], embedder.dimensions)
        if loaded.kind != "category":
            raise ArtefactError(
                f"{loaded.manifest.path}: '{strategy}' is a {loaded.kind} "
                "model, not a category classifier"
            )
        check_embedder(loaded.manifest, embedder.fingerprint)
        models[strategy] = loaded
    scorer = None
    if spec.scorer is not None and spec.cost_quality is None:
        scorer = load_model(root / spec.scorer, embedder.dimensions)
        check_embedder(scorer.manifest, embedder.fingerprint)
        if "strong" not in scorer.model.classes:
            raise ArtefactError(f"{scorer.manifest.path}: a scorer needs a 'strong' class")
    tiers = {**DEFAULT_CATEGORY_TIERS, **spec.category_tiers}
    for name, loaded in models.items():
        untiered = sorted(set(loaded.model.classes) - set(tiers))
        if untiered:
            raise ArtefactError(
                f"strategy '{name}' has categories without a tier: {untiered}; "
                "add them to spec.routing.categoryTiers"
            )
    quality = _quality_rule(spec, root, base_dir, embedder)
    embedder.embed("warm up")
    return Router(
        spec=spec,
        embedder=embedder,
        models=MappingProxyType(models),
        scorer=scorer,
        tiers=MappingProxyType(tiers),
        splitter=Splitter.of(spec.experiments[0]) if spec.experiments else None,
        rule_names=tuple(_describe(r) for r in spec.signal_rules),
        quality=quality,
    )
