"""``routeiq train | score | eval``: the routing subcommands (registered by extproc.cli).

* ``train`` fits one strategy on labelled data (category labels, or per-model correctness
  with ``--strong/--weak``) and writes ``weights.npz`` + ``manifest.json``. It needs
  scikit-learn (dev/training dependency), imported only inside this command.
* ``score`` writes ``{"id", "category", "tier", "score"}`` per input line (``{"id",
  "prompt"}`` or an OpenAI request body) using the same ``Router`` as the server.
* ``eval`` prints category accuracy, or APGR / CPT(50%) / CPT(80%) for strong/weak data.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from extproc.api.errors import ApiError, bad_request
from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.config.errors import ConfigError
from extproc.routing.classifiers import STRATEGIES
from extproc.routing.router import Router, build_router
from extproc.routing.spec import RoutingSpec


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``train``, ``score`` and ``eval`` to the ``routeiq`` parser."""
    for name, handler, help_text in (
        ("score", run_score, "score prompts: JSONL in, {id, category, tier, score} JSONL out"),
        ("eval", run_eval, "category accuracy, or APGR/CPT on strong/weak labelled data"),
    ):
        p = subparsers.add_parser(name, help=help_text)
        p.set_defaults(handler=handler, func=handler)
        _router_options(p)
        p.add_argument("--input", type=Path, required=True)
        if name == "score":
            p.add_argument("--output", type=Path, required=True)
        else:
            _label_options(p)
            p.add_argument("--holdout", type=int, default=None,
                           help="only rows in the held-out split (percent), as train keeps out")
    t = subparsers.add_parser("train", help="train a routing artefact (needs scikit-learn)")
    t.set_defaults(handler=run_train, func=run_train)
    t.add_argument("--strategy", choices=STRATEGIES, required=True)
    t.add_argument("--data", type=Path, nargs="+", required=True, help="JSONL/CSV/JSON files")
    t.add_argument("--extra", type=Path, nargs="*", default=[],
                   help="more category-labelled files, used whole (no held-out split)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--embedder", type=Path, default=None, help="embedder manifest.json")
    t.add_argument("--holdout", type=int, default=20, help="percent held out for metrics")
    t.add_argument("--cv-folds", type=int, default=5, help="group folds for strong/weak CV")
    t.add_argument("--param", action="append", default=[], help="name=value, e.g. k=10")
    _label_options(t)


def _router_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", default="centroid")
    p.add_argument("--models-dir", default=None, help="default: the repo's models/")


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strong", default=None, help="column of the strong model's correctness")
    p.add_argument("--weak", default=None, help="column of the weak model's correctness")


def _router(args: argparse.Namespace) -> Router:
    spec = RoutingSpec(strategy=args.strategy, models_dir=args.models_dir)
    return build_router(spec, Path.cwd())


def request_of(line: dict[str, Any]) -> ParsedRequest:
    """A ParsedRequest for a scoring line: an OpenAI body, or ``{"prompt": ...}``."""
    if "messages" in line:
        endpoint, body = Endpoint.CHAT_COMPLETIONS, line
    elif "input" in line:
        endpoint, body = Endpoint.RESPONSES, line
    else:
        prompt = line.get("prompt", line.get("query"))
        if not isinstance(prompt, str):
            raise bad_request("the line needs 'prompt' or an OpenAI request body")
        endpoint = Endpoint.CHAT_COMPLETIONS
        body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
    body = {"model": "auto", **body}
    return parse_request(endpoint, "POST", f"/v1/{endpoint.value}", {}, orjson.dumps(body))


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open() as fh:
        for n, raw in enumerate(fh, 1):
            if raw.strip():
                yield n, json.loads(raw)


def run_score(args: argparse.Namespace) -> int:
    """Handler of ``routeiq score``."""
    try:
        router = _router(args)
    except ConfigError as exc:
        print(f"routeiq score: {exc}", file=sys.stderr)
        return 2
    with args.output.open("w") as out:
        for n, line in _lines(args.input):
            try:
                result = router.classify(request_of(line))
            except ApiError as exc:
                print(f"{args.input}:{n}: {exc}", file=sys.stderr)
                return 1
            record = {"id": line.get("id", n), "category": result.category,
                      "tier": result.tier, "score": round(result.score, 6)}
            out.write(json.dumps(record) + "\n")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``routeiq eval``: category accuracy or strong/weak APGR/CPT."""
    from extproc.routing.datasets import holdout, read_labelled, read_strong_weak
    from extproc.routing.metrics import accuracy, strong_weak_report

    try:
        router = _router(args)
    except ConfigError as exc:
        print(f"routeiq eval: {exc}", file=sys.stderr)
        return 2
    if args.strong or args.weak:
        sw = read_strong_weak([args.input], args.strong, args.weak)
        scores = [router.classify(request_of({"prompt": t})).score for t in sw.texts]
        report = strong_weak_report(scores, sw.strong, sw.weak)
        print(json.dumps({"strategy": args.strategy, **report.as_dict()}))
        return 0
    data = read_labelled([args.input])
    rows = [(t, y) for t, y in zip(data.texts, data.labels, strict=True)
            if args.holdout is None or holdout(t, args.holdout)]
    if not rows:
        print(f"routeiq eval: no labelled rows to evaluate in {args.input}", file=sys.stderr)
        return 1
    predicted = [router.classify(request_of({"prompt": t})).category for t, _ in rows]
    acc = accuracy(predicted, [y for _, y in rows])
    print(json.dumps({"strategy": args.strategy, "n": len(predicted), "accuracy": acc}))
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``routeiq train`` (lazy import: scikit-learn is not a serving dependency)."""
    from extproc.routing.training_run import train_command

    code: int = train_command(args)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m extproc.routing.cli train|score|eval ...`` (same as ``routeiq ...``)."""
    parser = argparse.ArgumentParser(prog="routeiq")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
