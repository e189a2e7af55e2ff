"""Routing accuracy experiments behind the figures in docs/routing.md.

    .venv/bin/python benchmarks/routing_accuracy.py categories [--trained] [--max-tokens 128]
    .venv/bin/python benchmarks/routing_accuracy.py strongweak
    .venv/bin/python benchmarks/routing_accuracy.py realistic [--static M]

``--static models/static/embedder/manifest.json`` embeds with the static (distilled)
embedder instead of the ONNX model (``categories`` and ``realistic``).

Reads data from ../shared/data/routing (never copied), embeds it with the shipped ONNX
embedder (cached under --cache, keyed by model hash, truncation and text) and prints
accuracies on the held-out split (``datasets.holdout``: 20% by sha256 of the prompt) and
APGR/CPT under subject-wise cross-validation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from extproc.routing.artefacts import sha256_file
from extproc.routing.categories import DEFAULT_CATEGORY_TIERS, LLMROUTER_TASKS
from extproc.routing.datasets import holdout, read_labelled, read_strong_weak
from extproc.routing.embedder import Embedder, load_embedder
from extproc.routing.metrics import accuracy, strong_weak_report
from extproc.routing.router import cut, question
from extproc.routing.spec import EmbeddingText
from extproc.routing.static_embedder import StaticEmbedder, load_static_embedder
from extproc.routing.train import fit_model

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "routing"


def load(args: argparse.Namespace) -> tuple[Embedder | StaticEmbedder, str]:
    """The embedder the options name (``--static`` or the ONNX ``--manifest``) and the
    sha256 of its weights (the cache key)."""
    if args.static is not None:
        static = load_static_embedder(args.static, args.max_tokens, keep=args.keep)
        return static, sha256_file(args.static.parent / static.model)
    emb = load_embedder(args.manifest, args.model, args.max_tokens, keep=args.keep)
    return emb, sha256_file(args.manifest.parent / emb.model)


def embed_cached(
    emb: Embedder | StaticEmbedder, texts: Sequence[str], cache: Path, tag: str
) -> np.ndarray:
    key = hashlib.sha256(("\0".join(texts) + tag).encode()).hexdigest()[:16]
    path = cache / f"{key}.npy"
    if path.exists():
        return np.load(path)
    start = time.perf_counter()
    x = emb.embed_many(list(texts))
    print(f"# embedded {len(texts)} texts in {time.perf_counter() - start:.1f} s")
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def categories(args: argparse.Namespace) -> None:
    emb, sha = load(args)
    tag = f"{sha}:{args.max_tokens}:{args.prefix}:{args.keep}"
    data = read_labelled([DATA / "llmrouter_query_train.jsonl"], raw_labels=True)
    options = EmbeddingText(max_tokens=args.max_tokens, keep=args.keep)
    base = tag.rsplit(":", 2)[0] + f"::{args.keep}"  # the same embedding without prefix
    x = embed_cached(emb, [cut(t, options) for t in data.texts], args.cache, base)
    test = np.array([holdout(t) for t in data.texts])
    if args.prefix:
        # A system prompt at serving time only (includeSystem=true, models built without):
        # the held-out prompts are embedded with the prefix, training ones without.
        xp = embed_cached(emb, [cut(args.prefix + t, options) for t in data.texts], args.cache, tag)
        x = np.where(test[:, None], xp, x)
    tasks = np.array(data.labels)
    cats = np.array([LLMROUTER_TASKS[t] for t in tasks])
    own = read_labelled([ROOT / "models" / "prompts.jsonl"], raw_labels=True)
    xo = embed_cached(emb, own.texts, args.cache, base + "own")
    print(
        f"train {int((~test).sum())} test {int(test.sum())} ({emb.model}, maxTokens "
        f"{args.max_tokens}, keep {args.keep}, prefix {args.prefix!r})"
    )

    def report(
        name: str, model_scores: np.ndarray, classes: Sequence[str], truth: np.ndarray
    ) -> None:
        pred = [classes[i] for i in model_scores.argmax(axis=1)]
        print(f"{name:52s} {accuracy(pred, list(truth)):.4f}")

    m = fit_model("centroid", x[~test], list(tasks[~test]))
    report("14 tasks, nearest centroid (train split)", m.scores(x[test]), m.classes, tasks[test])
    m = fit_model("centroid", xo, list(own.labels))
    report("9 categories, centroids of own prompts only", m.scores(x[test]), m.classes, cats[test])
    xc = np.concatenate([x[~test], xo])
    yc = list(cats[~test]) + list(own.labels)
    gc = list(tasks[~test]) + ["own"] * len(own.labels)
    m = fit_model("centroid", xc, yc, gc)
    report(
        "9 categories, centroid per source (shipped recipe)",
        m.scores(x[test]),
        m.classes,
        cats[test],
    )
    m = fit_model("centroid", x[~test], list(cats[~test]), list(tasks[~test]))
    report(
        "6 categories, centroid per source, no own prompts",
        m.scores(x[test]),
        m.classes,
        cats[test],
    )
    if args.trained:
        for strategy in ("knn", "linear", "svm", "mlp"):
            start = time.perf_counter()
            m = fit_model(strategy, xc, yc)
            report(f"9 categories, {strategy}", m.scores(x[test]), m.classes, cats[test])
            m = fit_model(strategy, x[~test], list(tasks[~test]))
            report(
                f"14 tasks, {strategy} ({time.perf_counter() - start:.0f} s)",
                m.scores(x[test]),
                m.classes,
                tasks[test],
            )


def realistic(args: argparse.Namespace) -> None:
    """Each strategy trained as ``routeiq train`` trains the shipped artefacts (LLMRouter
    minus the held-out 20%, plus the own prompts, groups = source task), scored on
    models/realistic_eval.jsonl embedded as served (question asked, 2000 characters)."""
    emb, sha = load(args)
    tag = f"{sha}:{args.max_tokens}::{args.keep}"
    data = read_labelled([DATA / "llmrouter_query_train.jsonl"])
    own = read_labelled([ROOT / "models" / "prompts.jsonl"])
    test = read_labelled([ROOT / "models" / "realistic_eval.jsonl"])
    train = np.array([not holdout(t) for t in data.texts])
    x = embed_cached(emb, data.texts, args.cache, tag + "train")[train]
    xt = np.concatenate([x, embed_cached(emb, own.texts, args.cache, tag + "own")])
    yt = [y for y, keep in zip(data.labels, train, strict=True) if keep] + list(own.labels)
    gt = [g for g, keep in zip(data.groups, train, strict=True) if keep]
    gt += ["own"] * len(own.labels)
    options = EmbeddingText(max_tokens=args.max_tokens, keep=args.keep)
    served = [cut(question(t, options), options) for t in test.texts]
    xe = emb.embed_many(served)
    print(f"train {len(yt)}, realistic {len(served)} ({emb.model}, maxTokens {args.max_tokens})")
    for strategy in ("centroid", "knn", "linear", "svm", "mlp"):
        m = fit_model(strategy, xt, yt, gt)
        pred = [m.classes[i] for i in m.scores(xe).argmax(axis=1)]
        tiers = [
            DEFAULT_CATEGORY_TIERS[p] == DEFAULT_CATEGORY_TIERS[t]
            for p, t in zip(pred, test.labels, strict=True)
        ]
        print(
            f"{strategy:10s} category {accuracy(pred, list(test.labels)):.4f}  "
            f"tier {np.mean(tiers):.4f}",
            flush=True,
        )


def strongweak(args: argparse.Namespace) -> None:
    from sklearn.model_selection import GroupKFold

    emb = load_embedder(args.manifest, args.model, args.max_tokens)
    tag = f"{sha256_file(args.manifest.parent / emb.model)}:{args.max_tokens}"
    files = sorted((DATA / "routellm_mmlu_train").glob("mmlu_*.csv"))
    sw = read_strong_weak(files, "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1")
    x = embed_cached(emb, sw.texts, args.cache, tag)
    y = ["strong" if w < 0.5 else "weak" for w in sw.weak]
    groups = np.array(sw.groups)
    print(
        f"{len(y)} prompts, {len(set(sw.groups))} subjects, strong {np.mean(sw.strong):.3f} "
        f"weak {np.mean(sw.weak):.3f}"
    )
    for strategy in ("linear", "mlp", "knn", "centroid"):
        scores = np.zeros(len(y))
        for tr, te in GroupKFold(n_splits=5).split(x, y, groups):
            m = fit_model(
                strategy,
                x[tr],
                [y[i] for i in tr],
                params={"C": 0.01} if strategy == "linear" else None,
            )
            scores[te] = m.scores(x[te])[:, list(m.classes).index("strong")]
        r = strong_weak_report(list(scores), sw.strong, sw.weak)
        print(f"{strategy:10s} APGR {r.apgr:.4f} CPT(50%) {r.cpt50:.4f} CPT(80%) {r.cpt80:.4f}")
    # Transfer: a difficulty model trained only on LLMRouter's dcrouter questions (hard =
    # most of its 9 small models fail), scored on all RouteLLM MMLU prompts (none seen).
    dc = json.loads((DATA / "llmrouter_dcrouter_train.json").read_text())
    xd = embed_cached(emb, [r["question"] for r in dc], args.cache, tag)
    yd = ["strong" if np.mean(list(r["scores"].values())) < 0.5 else "weak" for r in dc]
    for strategy in ("linear", "mlp"):
        m = fit_model(strategy, xd, yd, params={"C": 0.01} if strategy == "linear" else None)
        scores = m.scores(x)[:, list(m.classes).index("strong")]
        r = strong_weak_report(list(scores), sw.strong, sw.weak)
        print(
            f"{'dc-' + strategy:10s} APGR {r.apgr:.4f} CPT(50%) {r.cpt50:.4f} "
            f"CPT(80%) {r.cpt80:.4f}  (trained on dcrouter only)"
        )
    rng = np.random.default_rng(0)
    r = strong_weak_report(list(rng.random(len(y))), sw.strong, sw.weak)
    print(f"{'random':10s} APGR {r.apgr:.4f} CPT(50%) {r.cpt50:.4f} CPT(80%) {r.cpt80:.4f}")


def speed(args: argparse.Namespace) -> None:
    """Embedding-only p50 of int8 vs fp32 (and truncation lengths) on two prompts."""
    from routing_latency import SHORT, long_prompt  # same prompts as the latency benchmark

    prompts = {"short": SHORT, "long": long_prompt()}
    for manifest in (args.manifest, args.manifest.parent / "manifest_fp32.json"):
        for max_tokens in (128, 256):
            emb = load_embedder(manifest, max_tokens=max_tokens)
            row = []
            for text in prompts.values():
                for _ in range(10):
                    emb.embed(text)
                times = []
                for _ in range(200):
                    start = time.perf_counter()
                    emb.embed(text)
                    times.append((time.perf_counter() - start) * 1e3)
                row.append(f"{np.percentile(times, 50):6.2f}")
            print(
                f"{emb.model:18s} maxTokens {max_tokens:3d}  "
                f"p50 short {row[0]} ms  long {row[1]} ms"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["categories", "strongweak", "speed", "realistic"])
    parser.add_argument("--manifest", type=Path, default=ROOT / "models/embedder/manifest.json")
    parser.add_argument("--model", default=None)
    parser.add_argument("--static", type=Path, default=None, help="static embedder manifest")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--keep", choices=["head", "tail"], default="head")
    parser.add_argument("--prefix", default="", help="text prepended (system prompt test)")
    parser.add_argument("--trained", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path(".cache") / "routing-accuracy")
    args = parser.parse_args()
    commands = {"categories": categories, "strongweak": strongweak, "speed": speed}
    commands["realistic"] = realistic
    commands[args.what](args)


if __name__ == "__main__":
    main()
