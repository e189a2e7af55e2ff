"""``routeiq train``: data files -> embeddings -> fitted strategy -> artefact + manifest.

Category data: the held-out share (``--holdout``, by prompt hash, see
``datasets.holdout``) is kept out of training and used for the reported accuracy;
``--extra`` files (e.g. the team's own prompts) are added to training whole. Strong/weak
data (``--strong``/``--weak``): the label is "strong" when the weak model failed; metrics
come from group-wise cross-validation (RouteLLM: one group per subject file), then the
shipped model is refitted on everything.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from extproc.routing.datasets import file_sha256, holdout, read_labelled, read_strong_weak
from extproc.routing.embedders import load_text_embedder
from extproc.routing.metrics import accuracy, strong_weak_report
from extproc.routing.progress import Progress
from extproc.routing.router import default_models_dir
from extproc.routing.train import fit, fit_model, save_model

LICENCES: Mapping[str, str] = MappingProxyType(
    {
        "llmrouter": "MIT (ulab-uiuc/LLMRouter)",
        "routellm": "Apache-2.0 (lm-sys/RouteLLM); MMLU: MIT",
        "prompts.jsonl": "Apache-2.0 (RouteIQ's own prompts)",
    }
)


def _params(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = json.loads(value)
    return out


def _embed(emb: Any, texts: list[str], label: str = "embed") -> Any:
    """``emb.embed_many(texts)`` with a progress counter on a terminal (silent otherwise)."""
    with Progress(label, len(texts)) as progress:
        return emb.embed_many(texts, on_batch=progress.advance)


def _licence(path: Path) -> str:
    return next((v for k, v in LICENCES.items() if k in str(path)), "see the data's source")


def train_command(args: argparse.Namespace) -> int:
    """Fit and save; prints the metrics; returns an exit code."""
    manifest = args.embedder or default_models_dir() / "embedder" / "manifest.json"
    emb = load_text_embedder(manifest, threads=2, cache_entries=0)
    params = _params(args.param)
    files = [*args.data, *args.extra]
    data_info = {
        str(p): {"sha256": h, "licence": _licence(p)}
        for p, h in zip(files, file_sha256(files).values(), strict=True)
    }
    if args.strong or args.weak:
        kind, classes, arrays, fitted, metrics = _strong_weak(args, emb, params)
    else:
        kind, classes, arrays, fitted, metrics = _categories(args, emb, params)
    recipe = ".venv/bin/routeiq train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    path = save_model(
        args.out,
        args.strategy,
        classes,
        arrays,
        fitted,
        kind=kind,
        embedder_sha256=emb.fingerprint,
        data=data_info,
        metrics=metrics,
        recipe=recipe,
    )
    print(json.dumps({"manifest": str(path), **metrics}))
    return 0


def _categories(
    args: argparse.Namespace, emb: Any, params: dict[str, Any]
) -> tuple[str, tuple[str, ...], dict[str, Any], dict[str, Any], dict[str, Any]]:
    data = read_labelled(args.data)
    extra = read_labelled(args.extra) if args.extra else None
    test = np.array([holdout(t, args.holdout) for t in data.texts])
    x = _embed(emb, list(data.texts))
    y = np.array(data.labels)
    g = np.array(data.groups)
    xt, yt, gt = x[~test], list(y[~test]), list(g[~test])
    if extra is not None:
        xt = np.concatenate([xt, _embed(emb, list(extra.texts), "embed extra")])
        yt += list(extra.labels)
        gt += ["own"] * len(extra.labels)
    classes, arrays, fitted = fit(args.strategy, xt, yt, gt, params)
    metrics: dict[str, Any] = {"train": len(yt), "heldout": int(test.sum())}
    if test.any():
        from extproc.routing.strategies import model_from_arrays

        model = model_from_arrays(args.strategy, classes, arrays, fitted)
        pred = [classes[i] for i in model.scores(x[test]).argmax(axis=1)]
        metrics["heldout_accuracy"] = accuracy(pred, list(y[test]))
        metrics["heldout_rule"] = f"sha256(prompt) % 100 < {args.holdout}"
    return "category", classes, arrays, fitted, metrics


def _strong_weak(
    args: argparse.Namespace, emb: Any, params: dict[str, Any]
) -> tuple[str, tuple[str, ...], dict[str, Any], dict[str, Any], dict[str, Any]]:
    from sklearn.model_selection import GroupKFold

    sw = read_strong_weak(args.data, args.strong, args.weak)
    x = _embed(emb, list(sw.texts))
    y = ["strong" if w < 0.5 else "weak" for w in sw.weak]
    groups = np.array(sw.groups)
    scores = np.zeros(len(y))
    folds = min(args.cv_folds, len(set(sw.groups)))
    for tr, te in GroupKFold(n_splits=folds).split(x, y, groups):
        model = fit_model(args.strategy, x[tr], [y[i] for i in tr], params=params)
        scores[te] = model.scores(x[te])[:, list(model.classes).index("strong")]
    report = strong_weak_report(list(scores), sw.strong, sw.weak)
    metrics = {
        "n": len(y),
        "groups": len(set(sw.groups)),
        "cv": f"GroupKFold({folds}) by group",
        "strong": args.strong,
        "weak": args.weak,
        **report.as_dict(),
    }
    classes, arrays, fitted = fit(args.strategy, x, y, params=params)
    return "strongweak", classes, arrays, fitted, metrics
