"""Leave-one-family-out comparison of label designs x model families for the need model.

One command regenerates the comparison table of docs/routing.md::

    .venv/bin/python -m extproc.routing.quality_experiments \\
        --data ../shared/data/routing --cache .cache/quality [--only NAME ...] \\
        [--static models/static/embedder/manifest.json] [--per-family]

The prompts are embedded once with the shipped int8 embedder (first 128 tokens, as
served) and cached in ``--cache`` (keyed by text hash and embedder hash), so reruns only
fit models. Hyperparameters are fixed per config (never chosen on the held-out family).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.embedders import embedder_kind, load_text_embedder
from extproc.routing.quality_data import QualityData, embed_cached, load_quality_data
from extproc.routing.quality_features import FEATURE_NAMES, feature_matrix
from extproc.routing.quality_fit import fit_logistic, fit_mlp, fit_ridge, knn_smooth
from extproc.routing.quality_labels import LABELS, within_family_rank
from extproc.routing.quality_loso import (
    FAMILIES,
    FoldResult,
    loso,
    subject_cv,
    within_family_cv,
)
from extproc.routing.spec import EmbeddingText

Array = npt.NDArray[Any]
DEFAULT_SHARE = 0.3
MAX_CHARS = EmbeddingText().max_chars


@dataclass(frozen=True)
class Inputs:
    """Embeddings and features of the data rows, then of ``n_ref`` reference prompts
    (indices ``len(data.texts)`` onwards: scored for calibration, never trained on)."""

    data: QualityData
    emb: Array
    feats: Array
    n_ref: int = 0

    @property
    def reference(self) -> Array | None:
        n = len(self.data.texts)
        return np.arange(n, n + self.n_ref) if self.n_ref else None

    def x(self, kind: str) -> Array:
        if kind == "emb":
            return self.emb
        if kind == "feats":
            return self.feats
        return np.concatenate([self.emb, self.feats], axis=1)


def target(inputs: Inputs, label: str, rank: bool) -> Array:
    """The label of every data row (reference rows get none)."""
    y = LABELS[label](inputs.data)
    return within_family_rank(y, inputs.data.family) if rank else y


def family_centred(inputs: Inputs, x: Array, train: Array) -> Array:
    """``x[train]`` minus each row's family mean (only within-family directions remain)."""
    out = x[train].copy()
    fam = inputs.data.family[train]
    for name in np.unique(fam):
        rows = fam == name
        out[rows] -= out[rows].mean(axis=0)
    return out


@dataclass(frozen=True)
class Config:
    name: str
    model: str
    label: str
    rank: bool
    xkind: str = "both"
    param: float = 0.0
    balance: bool = True
    only: str | None = None
    centre: bool = False


def trainer(inputs: Inputs, config: Config) -> Callable[[Array, Array], Callable[[Array], Array]]:
    """``fit(train_idx, weights) -> predict(idx)`` for one config."""
    x = inputs.x(config.xkind)
    y = target(inputs, config.label, config.rank)

    def fit(train: Array, w: Array) -> Callable[[Array], Array]:
        if config.only is not None:
            keep = inputs.data.family[train] == config.only
            train, w = train[keep], np.ones(int(keep.sum()))
        if config.model == "knn":
            k = int(config.param)
            return lambda idx: knn_smooth(inputs.emb[train], y[train], inputs.emb[idx], k)
        xt = family_centred(inputs, x, train) if config.centre else x[train]
        if config.model == "ridge":
            fitted = fit_ridge(xt, y[train], w, config.param)
        elif config.model == "logistic":
            fitted = fit_logistic(xt, y[train], w, config.param)
        else:
            fitted = fit_mlp(xt, y[train], w, int(config.param), 1e-3)
        return lambda idx: fitted.predict(x[idx])

    return fit


def configs() -> list[Config]:
    """The compared grid: fixed hyperparameters, chosen before looking at any fold."""
    out = [Config("length only", "ridge", "pair", False, "length", 1.0)]
    for label in LABELS:
        for rank in (False, True):
            tag = f"{label}{'-rank' if rank else ''}"
            out.append(Config(f"ridge {tag}", "ridge", label, rank, "both", 0.01))
    out.append(Config("ridge irt_gain a=1", "ridge", "irt_gain", False, "both", 1.0))
    out.append(Config("ridge ladder a=1", "ridge", "ladder", False, "both", 1.0))
    out.append(Config("ridge weak_wrong a=1", "ridge", "weak_wrong", False, "both", 1.0))
    for alpha in (0.001, 0.1, 1.0):
        out.append(Config(f"ridge ladder-rank a={alpha:g}", "ridge", "ladder", True, "both", alpha))
        out.append(Config(f"ridge pair a={alpha:g}", "ridge", "pair", False, "both", alpha))
    out += [
        Config("ridge ladder-rank, centred", "ridge", "ladder", True, "both", 0.01, centre=True),
        Config("ridge irt-rank, centred", "ridge", "irt", True, "both", 0.01, centre=True),
        Config("ridge pair, centred", "ridge", "pair", False, "both", 0.01, centre=True),
        Config("ridge pair, unbalanced", "ridge", "pair", False, "both", 0.01, balance=False),
        Config(
            "ridge ladder-rank, unbalanced", "ridge", "ladder", True, "both", 0.01, balance=False
        ),
        Config(
            "ridge pair, RouteLLM MMLU only",
            "ridge",
            "pair",
            False,
            "both",
            0.01,
            only="routellm-mmlu",
        ),
        Config(
            "ridge weak_wrong, RouteLLM MMLU only",
            "ridge",
            "weak_wrong",
            False,
            "both",
            0.01,
            only="routellm-mmlu",
        ),
        Config("ridge ladder-rank, features only", "ridge", "ladder", True, "feats", 0.01),
        Config("ridge ladder-rank, embedding only", "ridge", "ladder", True, "emb", 0.01),
        # The shipped recipe without one of its inputs: how much the embedder matters.
        Config("ridge pair a=1, features only", "ridge", "pair", False, "feats", 1.0),
        Config("ridge pair a=1, embedding only", "ridge", "pair", False, "emb", 1.0),
        Config("logistic pair", "logistic", "pair", False, "both", 0.01),
        Config("logistic ladder-rank", "logistic", "ladder", True, "both", 0.01),
        Config("knn50 pair", "knn", "pair", False, "emb", 50),
        Config("knn50 ladder-rank", "knn", "ladder", True, "emb", 50),
        Config("mlp64 ladder-rank", "mlp", "ladder", True, "both", 64),
        Config("mlp64 pair", "mlp", "pair", False, "both", 64),
    ]
    return out


def run(inputs: Inputs, config: Config, share: float, traffic: bool = False) -> list[FoldResult]:
    if config.xkind == "length":
        length = inputs.feats[:, [FEATURE_NAMES.index("log_chars")]]
        inputs = Inputs(inputs.data, inputs.emb, length, inputs.n_ref)
        config = replace(config, xkind="feats")
    fit = trainer(inputs, config)
    families = tuple(f for f in FAMILIES if f != config.only)  # never in-sample
    results = loso(inputs.data, fit, share, families, config.balance, inputs.reference, traffic)
    if config.only is None:
        results.append(subject_cv(inputs.data, fit, share, inputs.reference, traffic))
    return results


def read_prompts(path: Path) -> list[str]:
    """The ``prompt`` of every JSON line of ``path``."""
    return [json.loads(line)["prompt"] for line in path.read_text().splitlines() if line]


def load_inputs(
    data_dir: Path,
    cache: Path,
    models: Path,
    reference: Path | None = None,
    static: Path | None = None,
    embedder: str = "embedder",
) -> Inputs:
    """Data rows (embedded through the cache) plus the reference prompts, if any, cut and
    embedded as served (first 2000 characters, 128 tokens), with ``models/embedder``
    (any kind) or the manifest ``static``. A static embedder is not cached: it embeds
    25k prompts in seconds."""
    data = load_quality_data(data_dir)
    texts = [t[:MAX_CHARS] for t in data.texts]
    ref = [t[:MAX_CHARS] for t in read_prompts(reference)] if reference is not None else []
    manifest = static or models / embedder / "manifest.json"
    model = load_text_embedder(manifest, max_tokens=128, threads=2, cache_entries=0)
    if embedder_kind(manifest) == "embedder":
        emb = embed_cached(data.texts, model, cache / "embeddings.npz", model.fingerprint)
    else:
        emb = model.embed_many(list(data.texts))
    if ref:
        emb = np.concatenate([emb, model.embed_many(ref)])
    return Inputs(data, emb, feature_matrix(texts + ref), len(ref))


COLUMNS: tuple[str, ...] = (*FAMILIES, "mmlu-subjects", "llmrouter-math")


def row(config: Config, results: list[FoldResult]) -> dict[str, Any]:
    """One table row: metrics per held-out family; mean/min over the LOSO families."""
    main = [r for r in results if r.family in FAMILIES]

    def per(attr: str) -> dict[str, float]:
        return {r.family: round(float(getattr(r, attr)), 3) for r in results}

    return {
        "config": config.name,
        "apgr": per("apgr"),
        "mean": round(float(np.mean([r.apgr for r in main])), 3),
        "min": round(min(r.apgr for r in main), 3),
        "cpt50": per("cpt50"),
        "cpt80": per("cpt80"),
        "share": per("share"),
        "lift": per("lift"),
        "min_lift": round(min(r.lift for r in main), 3),
        "max_share": round(max(r.share for r in main), 3),
    }


def print_row(result: dict[str, Any], seconds: float) -> None:
    cells = " | ".join(
        f"{result['apgr'][c]:.3f}" if c in result["apgr"] else "n/a" for c in COLUMNS
    )
    print(
        f"| {result['config']} | {cells} | {result['mean']:.3f} | {result['min']:.3f} | "
        f"{result['min_lift']:+.3f} | {result['max_share']:.2f} |  ({seconds:.0f} s)",
        flush=True,
    )


def print_families(result: dict[str, Any]) -> None:
    """The per-family lines of one row (APGR, CPT, share and lift at the bar)."""
    print("| held-out family | APGR | CPT(50%) | CPT(80%) | premium share | lift over random |")
    print("|---|---|---|---|---|---|")
    for c in COLUMNS:
        if c in result["apgr"]:
            print(
                f"| {c} | {result['apgr'][c]:.3f} | {result['cpt50'][c]:.1%} | "
                f"{result['cpt80'][c]:.1%} | {result['share'][c]:.1%} | "
                f"{result['lift'][c]:+.3f} |"
            )


def print_within(inputs: Inputs) -> None:
    """APGR by 5-fold CV inside each family, for two label designs (ridge, alpha 0.1)."""
    print("| label (ridge a=0.1, 5-fold CV inside the family) | " + " | ".join(FAMILIES) + " |")
    print("|---" * (len(FAMILIES) + 1) + "|")
    for label, rank in (("pair", False), ("ladder", True)):
        config = Config(f"{label}{'-rank' if rank else ''}", "ridge", label, rank, "both", 0.1)
        fit = trainer(inputs, config)
        cells = [f"{within_family_cv(inputs.data, fit, f):.3f}" for f in FAMILIES]
        print(f"| {config.name} | " + " | ".join(cells) + " |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routing"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/quality"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--share", type=float, default=DEFAULT_SHARE)
    parser.add_argument(
        "--reference",
        type=Path,
        default=Path("models/prompts.jsonl"),
        help="prompts the premium share is calibrated on (JSONL 'prompt')",
    )
    parser.add_argument("--only", nargs="*", help="config names to run (default: all)")
    parser.add_argument(
        "--calibration",
        choices=("reference", "traffic"),
        default="reference",
        help="traffic: each held-out family's bar is set on its own needs",
    )
    parser.add_argument("--out", type=Path, help="also write the rows as JSON lines here")
    parser.add_argument(
        "--within",
        action="store_true",
        help="instead: 5-fold CV inside each family (the learnable ceiling)",
    )
    parser.add_argument(
        "--static", type=Path, help="embed with this static embedder manifest instead"
    )
    parser.add_argument("--per-family", action="store_true", help="per-family lines per row")
    args = parser.parse_args(argv)
    inputs = load_inputs(args.data, args.cache, args.models, args.reference, args.static)
    if args.within:
        print_within(inputs)
        return 0
    print("| config | " + " | ".join(COLUMNS) + " | mean | min | min lift | max share |")
    print("|---" * (len(COLUMNS) + 5) + "|")
    rows = []
    for config in configs():
        if args.only and config.name not in args.only:
            continue
        start = time.perf_counter()
        result = row(config, run(inputs, config, args.share, args.calibration == "traffic"))
        rows.append(result)
        print_row(result, time.perf_counter() - start)
        if args.per_family:
            print_families(result)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
