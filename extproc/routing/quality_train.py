"""The recipe of the shipped need model (``models/quality``), reproducible by one command::

    .venv/bin/python -m extproc.routing.quality_train \\
        --data ../shared/data/routing --cache .cache/quality --out models/quality

It fits the configuration chosen with leave-one-family-out evaluation
(:mod:`extproc.routing.quality_experiments`) on every row of the shared data (families
balanced: every benchmark weighs the same), computes the quantiles of the need on the
reference prompts (``models/prompts.jsonl``: RouteIQ's own, realistic prompts) that turn
a ``premiumShare`` into a bar, and writes ``weights.npz`` + ``manifest.json`` (sha256,
source, recipe, data hashes, the LOSO metrics). Same data, same embedder, same machine
type: same bytes (the npz is written without timestamps; the test suite checks the recipe
code for byte-reproduction on a small fixture).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.embedders import load_text_embedder
from extproc.routing.quality_artefact import save_need_model
from extproc.routing.quality_data import data_hashes
from extproc.routing.quality_experiments import (
    DEFAULT_SHARE,
    Config,
    Inputs,
    load_inputs,
    row,
    run,
    target,
)
from extproc.routing.quality_fit import Fitted, fit_logistic, fit_ridge
from extproc.routing.quality_loso import balanced_weights

Array = npt.NDArray[Any]
QUANTILES = 1001
RECIPE = (
    "python -m extproc.routing.quality_train --data ../shared/data/routing "
    "--cache .cache/quality --out models/quality"
)


@dataclass(frozen=True)
class Recipe:
    """The shipped configuration (label design, model family, regularisation)."""

    label: str = "pair"
    rank: bool = False
    model: str = "ridge"
    param: float = 1.0

    def config(self) -> Config:
        """The same configuration as a row of the comparison grid."""
        tag = f"{self.label}{'-rank' if self.rank else ''} a={self.param:g}"
        return Config(f"{self.model} {tag}", self.model, self.label, self.rank, "both", self.param)


def fit_all(x: Array, y: Array, w: Array, recipe: Recipe) -> Fitted:
    """Fit ``recipe`` on every row (weights ``w``)."""
    if recipe.model == "ridge":
        return fit_ridge(x, y, w, recipe.param)
    if recipe.model == "logistic":
        return fit_logistic(x, y, w, recipe.param)
    raise ValueError(f"recipe model '{recipe.model}' is not shippable as a dense head")


def reference_quantiles(needs: Array, weights: Array, count: int = QUANTILES) -> Array:
    """``count`` evenly spaced weighted quantiles of ``needs`` (for share calibration)."""
    order = np.argsort(needs, kind="stable")
    cum = np.cumsum(weights[order])
    cum = (cum - 0.5 * weights[order]) / cum[-1]
    return np.interp(np.linspace(0.0, 1.0, count), cum, needs[order])


def train(inputs: Inputs, recipe: Recipe, out: Path, meta: Mapping[str, Any]) -> Path:
    """Fit on every data row, calibrate on the reference prompts, write the artefact;
    returns the manifest path."""
    n = len(inputs.data.texts)
    x = inputs.x("both")
    y = target(inputs, recipe.label, recipe.rank)
    w = balanced_weights(inputs.data.family)
    fitted = fit_all(x[:n], y, w, recipe)
    reference = inputs.reference
    if reference is None:
        raise ValueError("the recipe needs reference prompts to calibrate shares on")
    needs = fitted.predict(x[reference])
    return save_need_model(
        out,
        mean=fitted.mean,
        scale=fitted.scale,
        weights=fitted.weights,
        biases=fitted.biases,
        reference_needs=reference_quantiles(needs, np.ones(len(needs))),
        output=fitted.output,
        use_embedding=True,
        meta={**meta, "params": asdict(recipe), "rows": n, "reference_prompts": len(needs)},
    )


def _recipe(argv: list[str]) -> str:
    return "python -m extproc.routing.quality_train " + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the shipped need model (models/quality).")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routing"))
    parser.add_argument("--cache", type=Path, default=Path(".cache/quality"))
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("models/quality"))
    parser.add_argument("--reference", type=Path, default=Path("models/prompts.jsonl"))
    parser.add_argument(
        "--embedder",
        default="embedder",
        help="embedder directory under --models (any kind: e.g. static/embedder)",
    )
    args = parser.parse_args(argv)
    inputs = load_inputs(args.data, args.cache, args.models, args.reference, None, args.embedder)
    manifest = args.models / args.embedder / "manifest.json"
    fingerprint = load_text_embedder(manifest, cache_entries=0).fingerprint
    recipe = Recipe()
    metrics = row(recipe.config(), run(inputs, recipe.config(), DEFAULT_SHARE))
    metrics["evaluation"] = (
        "leave-one-family-out (extproc.routing.quality_loso); share/lift at premiumShare "
        f"{DEFAULT_SHARE} calibrated on the reference prompts"
    )
    meta = {
        "recipe": RECIPE if args.embedder == "embedder" else _recipe(sys.argv[1:]),
        "source": "RouteLLM MMLU responses (lm-sys/RouteLLM, Apache-2.0), MMLU-Pro model "
        "outputs (TIGER-AI-Lab/MMLU-Pro, Apache-2.0/MIT), RouterBench ARC/MBPP/Winogrande "
        "(withmartian, MIT, via shuhao02/RouterDC), LLMRouter dcrouter (ulab-uiuc, MIT)",
        "embedder_sha256": fingerprint,
        "data": data_hashes(args.data),
        "metrics": metrics,
        "reference": "models/prompts.jsonl (RouteIQ's own prompts, Apache-2.0): the shipped "
        "premiumShare quantiles are the need distribution of these prompts",
    }
    print(train(inputs, recipe, args.out, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
