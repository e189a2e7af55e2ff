"""Static (distilled) embeddings against the shipped MiniLM: speed and a validation split.

    .venv/bin/python benchmarks/static_embedding.py speed [--static M ...]
    .venv/bin/python benchmarks/static_embedding.py validate --static M [M ...]
    .venv/bin/python benchmarks/static_embedding.py need [--static M]

``speed``: CPU and wall microseconds per ``embed`` of a short prompt and a ~450-token
prompt, one thread, each embedder in its own fresh process (no shared warm state),
printed with the ratio to MiniLM int8 measured in the same run.

``validate``: category accuracy on a *validation* split carved from the LLMRouter rows
that are not in the held-out 20% (``datasets.holdout``): those rows are split again by
sha256("validation:" + prompt) into 75% fit / 25% validation. The held-out split and
models/realistic_eval.jsonl are never read, so a variant chosen here is not chosen on the
figures reported for it (benchmarks/routing_accuracy.py, quality_experiments).

``need``: the shipped need recipe (``quality_train.Recipe``: ridge, ``pair``, alpha 1) fitted
on all 25.5k rows with each embedder, its premium bar set at ``premiumShare`` 0.3 on the
reference prompts, then the share of models/realistic_eval.jsonl above the bar per
category, and the rank correlation of the two models' needs on those prompts.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from extproc.routing.categories import LLMROUTER_TASKS
from extproc.routing.datasets import Labelled, holdout, read_labelled
from extproc.routing.embedder import load_embedder
from extproc.routing.metrics import accuracy
from extproc.routing.quality_experiments import load_inputs, target
from extproc.routing.quality_features import feature_matrix
from extproc.routing.quality_loso import balanced_weights
from extproc.routing.quality_train import Recipe, fit_all
from extproc.routing.router import cut, question
from extproc.routing.spec import EmbeddingText
from extproc.routing.static_embedder import load_static_embedder
from extproc.routing.train import fit_model

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "routing"
MINILM = ROOT / "models" / "embedder" / "manifest.json"
sys.path.insert(0, str(Path(__file__).resolve().parent))

# Run in a child process: one embedder, one thread, CPU time from process_time.
CHILD = """
import json, sys, time
from pathlib import Path
import numpy as np
from routing_latency import SHORT, long_prompt
kind, manifest, max_tokens, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
if kind == "minilm":
    from extproc.routing.embedder import load_embedder
    emb = load_embedder(manifest, max_tokens=max_tokens, threads=1, cache_entries=0)
else:
    from extproc.routing.static_embedder import load_static_embedder
    emb = load_static_embedder(manifest, max_tokens=max_tokens, cache_entries=0)
out = {}
for name, text in (("short", SHORT), ("long", long_prompt())):
    for _ in range(max(20, n // 20)):
        emb.embed(text)
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        emb.embed(text)
        walls.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / n
    out[name] = {"cpu_us": cpu * 1e6, "p50_us": float(np.percentile(walls, 50)) * 1e6}
print(json.dumps(out))
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")) if p
    )
    return env


def measure(kind: str, manifest: Path, max_tokens: int, n: int) -> dict[str, dict[str, float]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(manifest), str(max_tokens), str(n)],
        check=True,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=900,
    )
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def speed(args: argparse.Namespace) -> None:
    runs = [("minilm int8 (128 tokens)", "minilm", MINILM, 128, args.n_minilm)]
    for manifest in args.static:
        for max_tokens in (128, 512):
            label = f"static {manifest.parent.name} ({max_tokens} tokens)"
            runs.append((label, "static", manifest, max_tokens, args.n_static))
    base: dict[str, dict[str, float]] = {}
    print(f"# one thread, own process per row; cpus {os.cpu_count()}")
    print(
        "| embedder | short CPU µs | short p50 µs | ~450 tok CPU µs | ~450 tok p50 µs "
        "| CPU ratio short / long |"
    )
    print("|---|---|---|---|---|---|")
    for label, kind, manifest, max_tokens, n in runs:
        r = measure(kind, manifest, max_tokens, n)
        base = base or r
        ratio = (
            f"{r['short']['cpu_us'] / base['short']['cpu_us']:.3f} / "
            f"{r['long']['cpu_us'] / base['long']['cpu_us']:.3f}"
        )
        print(
            f"| {label} | {r['short']['cpu_us']:.0f} | {r['short']['p50_us']:.0f} | "
            f"{r['long']['cpu_us']:.0f} | {r['long']['p50_us']:.0f} | {ratio} |",
            flush=True,
        )


def validation(text: str) -> bool:
    """The validation quarter of the non-held-out rows (a hash independent of ``holdout``)."""
    return int(hashlib.sha256(("validation:" + text).encode()).hexdigest()[:8], 16) % 100 < 25


@dataclass(frozen=True)
class Split:
    """The non-held-out LLMRouter rows (texts as served), their tasks, the validation mask
    and RouteIQ's own prompts (fit only)."""

    texts: list[str]
    tasks: np.ndarray
    val: np.ndarray
    own: Labelled


def scores(x: np.ndarray, xo: np.ndarray, split: Split) -> list[float]:
    """Validation accuracy: 14 tasks centroid; 9 categories with the shipped centroid
    recipe, linear, knn, knn on vectors centred by the fit rows' mean; centroids of the
    own prompts only (a change of writing style). Fit on the fit part (+ own prompts)."""
    tasks, val, own = split.tasks, split.val, split.own
    cats = np.array([LLMROUTER_TASKS[t] for t in tasks])
    fit_x, fit_t, fit_c = x[~val], tasks[~val], cats[~val]

    def acc(strategy: str, xf: np.ndarray, y: list[str], g: list[str] | None = None) -> float:
        m = fit_model(strategy, xf, y, g)
        truth = tasks[val] if set(y) <= set(tasks) else cats[val]  # 14 tasks or 9 categories
        return accuracy([m.classes[i] for i in m.scores(x[val]).argmax(1)], list(truth))

    xc = np.concatenate([fit_x, xo])
    yc = list(fit_c) + list(own.labels)
    gc = list(fit_t) + ["own"] * len(own.labels)
    out = [acc("centroid", fit_x, list(fit_t)), acc("centroid", xc, yc, gc)]
    out += [acc("linear", xc, yc), acc("knn", xc, yc)]
    mean = xc.mean(axis=0)
    centred = x - mean
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    knn = fit_model("knn", (xc - mean) / np.linalg.norm(xc - mean, axis=1, keepdims=True), yc)
    pred = [knn.classes[i] for i in knn.scores(centred[val]).argmax(1)]
    out.append(accuracy(pred, list(cats[val])))
    out.append(acc("centroid", xo, list(own.labels)))
    return out


def validate(args: argparse.Namespace) -> None:
    data = read_labelled([DATA / "llmrouter_query_train.jsonl"], raw_labels=True)
    options = EmbeddingText(max_tokens=128)
    rows = [i for i, t in enumerate(data.texts) if not holdout(t)]  # never the test split
    texts = [cut(data.texts[i], options) for i in rows]
    tasks = np.array([data.labels[i] for i in rows])
    val = np.array([validation(data.texts[i]) for i in rows])
    own = read_labelled([ROOT / "models" / "prompts.jsonl"], raw_labels=True)
    split = Split(texts, tasks, val, own)
    print(f"# fit {int((~val).sum())} + {len(own.texts)} own, validation {int(val.sum())}")
    print(
        "| embedder | maxTokens | 14 tasks centroid | 9 cat. centroid recipe | 9 cat. linear "
        "| 9 cat. knn | 9 cat. knn, centred | 9 cat. own-prompt centroids |"
    )
    print("|---" * 8 + "|")
    if args.minilm:
        start = time.perf_counter()
        emb = load_embedder(MINILM, max_tokens=128, threads=1)
        x, xo = emb.embed_many(texts), emb.embed_many(own.texts)
        cells = " | ".join(f"{s:.3f}" for s in scores(x, xo, split))
        print(f"| minilm int8 | 128 | {cells} |  ({time.perf_counter() - start:.0f} s)", flush=True)
    for manifest in args.static:
        for max_tokens in args.max_tokens:
            st = load_static_embedder(manifest, max_tokens=max_tokens)
            x, xo = st.embed_many(texts), st.embed_many(own.texts)
            cells = " | ".join(f"{s:.3f}" for s in scores(x, xo, split))
            print(f"| {manifest.parent.name} | {max_tokens} | {cells} |", flush=True)


def realistic_needs(static: Path | None, texts: list[str]) -> tuple[np.ndarray, float]:
    """Needs of ``texts`` under the shipped recipe refitted with one embedder, and the bar
    of ``premiumShare`` 0.3 on the reference prompts."""
    inputs = load_inputs(
        DATA,
        ROOT / ".cache" / "quality",
        ROOT / "models",
        ROOT / "models" / "prompts.jsonl",
        static,
    )
    n = len(inputs.data.texts)
    recipe = Recipe()
    x = inputs.x("both")
    fitted = fit_all(
        x[:n],
        target(inputs, recipe.label, recipe.rank),
        balanced_weights(inputs.data.family),
        recipe,
    )
    bar = float(np.quantile(fitted.predict(x[inputs.reference]), 0.7))
    if static is None:
        emb = load_embedder(MINILM, max_tokens=128, threads=1).embed_many(texts)
    else:
        emb = load_static_embedder(static, max_tokens=128).embed_many(texts)
    needs = fitted.predict(np.concatenate([emb, feature_matrix(texts)], axis=1))
    return np.asarray(needs), bar


def need(args: argparse.Namespace) -> None:
    test = read_labelled([ROOT / "models" / "realistic_eval.jsonl"])
    options = EmbeddingText()
    texts = [cut(question(t, options), options) for t in test.texts]
    labels = np.array(test.labels)
    runs = {"minilm int8": realistic_needs(None, texts)}
    runs[f"static {args.static[0].parent.name}"] = realistic_needs(args.static[0], texts)
    cats = sorted(set(test.labels))
    print("| need model | " + " | ".join(cats) + " | all |")
    print("|---" * (len(cats) + 2) + "|")
    for name, (needs, bar) in runs.items():
        above = needs >= bar
        cells = " | ".join(f"{above[labels == c].mean():.0%}" for c in cats)
        print(f"| {name} | {cells} | {above.mean():.0%} |")
    (a, _), (b, _) = runs.values()
    rho = np.corrcoef(np.argsort(np.argsort(a)), np.argsort(np.argsort(b)))[0, 1]
    print(f"# Spearman rank correlation of the two needs on these prompts: {rho:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "validate", "need"])
    parser.add_argument(
        "--static",
        type=Path,
        nargs="*",
        default=[ROOT / "models" / "static" / "embedder" / "manifest.json"],
    )
    parser.add_argument("--max-tokens", type=int, nargs="*", default=[128])
    parser.add_argument("--minilm", action="store_true", help="validate: MiniLM row too")
    parser.add_argument("--n-minilm", type=int, default=300)
    parser.add_argument("--n-static", type=int, default=3000)
    args = parser.parse_args()
    {"speed": speed, "validate": validate, "need": need}[args.what](args)


if __name__ == "__main__":
    main()
