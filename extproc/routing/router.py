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

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

import extproc
from extproc.api.openai import ParsedRequest
from extproc.routing.ab import Splitter
from extproc.routing.artefacts import ArtefactError
from extproc.routing.categories import DEFAULT_CATEGORY_TIERS
from extproc.routing.classifiers import LoadedModel, Matrix, load_model
from extproc.routing.embedder import Embedder, load_embedder, timed_embed
from extproc.routing.signals import SignalValue, compute_signals
from extproc.routing.spec import TIER_ORDER, EmbeddingText, RoutingSpec, SignalRule

TOP_SCORES = 3


@dataclass(frozen=True, slots=True)
class Classification:
    """What the router concluded about one request (all of it goes into the explanation).

    ``score`` in [0, 1] is how much the prompt needs a strong model (the strong/weak
    scorer's probability when one is configured, else the tier's position). ``scores``
    holds the top category scores. ``variant`` is the experiment arm (None outside
    experiments); ``shadow`` the shadow arm's own classification, never acted upon.
    ``rules`` names the signal rules that moved the tier.
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

    @property
    def shadow_disagrees(self) -> bool:
        """True when a shadow arm ran and picked another category or tier."""
        return self.shadow is not None and (
            self.shadow.category != self.category or self.shadow.tier != self.tier
        )


def default_models_dir() -> Path:
    """The ``models/`` directory of the RouteIQ source tree (next to the package)."""
    return Path(extproc.__file__).resolve().parent.parent / "models"


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


def embedding_text(request: ParsedRequest, options: EmbeddingText) -> str:
    """The text that is embedded: the last user turn (after the system prompt when
    ``includeSystem``), cut by :func:`cut`."""
    text = request.last_user_text
    if options.include_system and request.system_text:
        text = f"{request.system_text}\n{text}"
    return cut(text, options)


def _describe(rule: SignalRule) -> str:
    bounds = []
    if rule.at_least is not None:
        bounds.append(f">={rule.at_least:g}")
    if rule.at_most is not None:
        bounds.append(f"<={rule.at_most:g}")
    moves = [f"min {rule.min_tier}" if rule.min_tier else "", f"max {rule.max_tier}"
             if rule.max_tier else ""]
    return f"{rule.signal}{','.join(bounds)}->{' '.join(m for m in moves if m)}"


@dataclass(frozen=True, slots=True)
class Router:
    """Built by :func:`build_router`; immutable and shared by every request of a snapshot."""

    spec: RoutingSpec
    embedder: Embedder
    models: Mapping[str, LoadedModel]
    scorer: LoadedModel | None
    tiers: Mapping[str, str]
    splitter: Splitter | None
    rule_names: tuple[str, ...]

    @property
    def sticky_by(self) -> str | None:
        """The header whose value the caller should pass as ``sticky_key`` (or None)."""
        return self.spec.experiments[0].sticky_by if self.spec.experiments else None

    def classify(self, request: ParsedRequest, sticky_key: str | None = None) -> Classification:
        """Classify one request; ``sticky_key`` pins its experiment arm (None: prompt hash)."""
        text = embedding_text(request, self.spec.embedding)
        vector, embed_ms = timed_embed(self.embedder, text)
        x: Matrix = vector[None, :]
        signals = dict(compute_signals(request, text))
        signals["score"] = self._score(x)
        frozen = MappingProxyType(signals)
        if self.splitter is None:
            return replace(self._classify(x, self.spec.strategy, frozen), embed_ms=embed_ms)
        arm = self.splitter.assign(sticky_key if sticky_key is not None else text)
        shadow = None if arm.shadow is None else self._classify(x, arm.shadow, frozen)
        result = self._classify(x, arm.arm, frozen)
        return replace(result, variant=arm.arm, experiment=arm.experiment, shadow=shadow,
                       embed_ms=embed_ms)

    def _score(self, x: Matrix) -> float:
        if self.scorer is None:
            return -1.0
        classes = self.scorer.model.classes
        return float(self.scorer.model.scores(x)[0, classes.index("strong")])

    def _classify(
        self, x: Matrix, strategy: str, signals: Mapping[str, SignalValue]
    ) -> Classification:
        model = self.models[strategy].model
        probs = model.scores(x)[0]
        order = np.argsort(-probs)[:TOP_SCORES]
        category = model.classes[int(order[0])]
        rank = TIER_ORDER.index(self.tiers[category])
        fired = []
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
        score = float(signals["score"])
        if score < 0:  # no strong/weak scorer configured: the tier's position is the need
            score = rank / (len(TIER_ORDER) - 1)
        return Classification(
            category=category,
            tier=TIER_ORDER[rank],
            score=min(1.0, max(0.0, score)),
            scores=MappingProxyType({model.classes[int(i)]: float(probs[i]) for i in order}),
            strategy=strategy,
            variant=None,
            signals=signals,
            rules=tuple(fired),
        )


def build_router(spec: RoutingSpec, base_dir: Path) -> Router:
    """Load, verify and warm everything ``spec`` needs; raises ``ArtefactError`` (a
    ``ConfigError``) with the offending path when an artefact is missing or tampered."""
    root = resolve_models_dir(spec, base_dir)
    if not root.is_dir():
        raise ArtefactError(
            f"routing modelsDir {root} does not exist (set spec.routing.modelsDir, relative "
            "to the config file, to a directory holding the embedder and classifiers)"
        )
    embedder = load_embedder(
        root / spec.embedder / "manifest.json", max_tokens=spec.embedding.max_tokens,
        threads=spec.threads, keep=spec.embedding.keep,
    )
    models = {}
    for strategy in spec.strategies:
        loaded = load_model(root / spec.artefacts[strategy], embedder.dimensions)
        if loaded.kind != "category":
            raise ArtefactError(f"{loaded.manifest.path}: '{strategy}' is a {loaded.kind} "
                                "model, not a category classifier")
        models[strategy] = loaded
    scorer = None
    if spec.scorer is not None:
        scorer = load_model(root / spec.scorer, embedder.dimensions)
        if "strong" not in scorer.model.classes:
            raise ArtefactError(f"{scorer.manifest.path}: a scorer needs a 'strong' class")
    tiers = {**DEFAULT_CATEGORY_TIERS, **spec.category_tiers}
    for name, loaded in models.items():
        untiered = sorted(set(loaded.model.classes) - set(tiers))
        if untiered:
            raise ArtefactError(f"strategy '{name}' has categories without a tier: {untiered}; "
                                "add them to spec.routing.categoryTiers")
    embedder.embed("warm up")
    return Router(
        spec=spec,
        embedder=embedder,
        models=MappingProxyType(models),
        scorer=scorer,
        tiers=MappingProxyType(tiers),
        splitter=Splitter.of(spec.experiments[0]) if spec.experiments else None,
        rule_names=tuple(_describe(r) for r in spec.signal_rules),
    )
