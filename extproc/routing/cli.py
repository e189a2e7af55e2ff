"""``routeiq train | score | eval | replay``: the routing subcommands (registered by
extproc.cli).

* ``score`` writes ``{"id", "category", "tier", "score"}`` per input line (``{"id",
  "prompt"}`` or an OpenAI request body); ``-`` is stdin/stdout. ``tier`` is what ``auto``
  picks under the config (``--config``, default the shipped one) with the knob moved by
  ``--premium-share``; ``score`` in [0, 1] is the need for premium.
* ``eval --labelled FILE...`` reports APGR, CPT(50/80/95), the config's operating point and
  the knob's calibration on strong/weak labelled data (extproc.routing.eval_report), with
  an optional PNG (``--plot``, needs matplotlib); ``eval --input FILE`` prints category
  accuracy on category-labelled data.
* ``replay --log FILE --config NEW`` re-decides logged traffic (extproc.routing.replay).
* ``train`` fits one strategy (extproc.routing.training_run; needs scikit-learn).

Every mistake (missing file, bad line, unknown strategy or model, empty stdin...) is one
line on stderr, ``routeiq <command>: <what>``, and exit code 1 (data) or 2 (config or
option); never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from extproc.config.errors import ConfigError
from extproc.routing.evaluation import EvaluationError
from extproc.routing.labelled import FORMATS, LabelledError
from extproc.routing.scoring import (
    ToolError,
    as_traffic,
    classify_many,
    default_workers,
    load_router,
    one_line,
    read_prompt_lines,
    request_of,
    routing_source,
    score_record,
    write_lines,
)
from extproc.routing.strategies import known_strategies

Handler = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def register(subparsers: Subparsers) -> None:
    """Add ``score``, ``eval``, ``replay`` and ``train`` to the ``routeiq`` parser."""
    s = _parser(
        subparsers,
        "score",
        run_score,
        "JSONL prompts in, {id, category, tier, score} JSONL out ('-': stdin/stdout)",
    )
    s.add_argument("--input", required=True, help="JSONL file, or '-' for stdin")
    s.add_argument("--output", required=True, help="JSONL file, or '-' for stdout")
    _router_options(s)
    _register_eval(subparsers)
    _register_replay(subparsers)
    _register_train(subparsers)


def _register_eval(subparsers: Subparsers) -> None:
    e = _parser(
        subparsers,
        "eval",
        run_eval,
        "APGR/CPT/operating point/calibration on labelled data, or category accuracy",
    )
    data = e.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--labelled",
        type=Path,
        nargs="+",
        help="strong/weak labelled files (formats: " + ", ".join(FORMATS) + ")",
    )
    data.add_argument("--input", type=Path, help="category-labelled JSONL/CSV: accuracy")
    e.add_argument("--format", choices=FORMATS, default=None, help="default: detected")
    _label_options(e)
    _router_options(e)
    e.add_argument(
        "--calibrate",
        default="0.1,0.3,0.5",
        help="premium shares to ask the knob for ('none': skip)",
    )
    e.add_argument("--plot", type=Path, default=None, help="write a PNG (needs matplotlib)")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument(
        "--holdout",
        type=int,
        default=None,
        help="with --input: only rows of the held-out split (percent)",
    )


def _register_replay(subparsers: Subparsers) -> None:
    r = _parser(
        subparsers,
        "replay",
        run_replay,
        "re-decide logged traffic under another config; print what would change",
    )
    r.add_argument(
        "--log",
        type=Path,
        action="append",
        required=True,
        help="decision log (JSONL); repeat for more files",
    )
    r.add_argument("--config", type=Path, required=True, help="the RoutingConfig to try")
    r.add_argument("--strategy", default=None, help="override spec.routing.strategy")
    r.add_argument(
        "--premium-share", type=float, default=None, help="move the auto knob of the new config"
    )
    r.add_argument(
        "--default-output-tokens",
        type=int,
        default=None,
        help="expected output when neither usage nor max_tokens was logged (default 256)",
    )
    r.add_argument("--json", action="store_true")


def _register_train(subparsers: Subparsers) -> None:
    t = _parser(subparsers, "train", run_train, "train a routing artefact (needs scikit-learn)")
    t.add_argument("--strategy", choices=known_strategies(), required=True)
    t.add_argument("--data", type=Path, nargs="+", required=True, help="JSONL/CSV/JSON files")
    t.add_argument(
        "--extra",
        type=Path,
        nargs="*",
        default=[],
        help="more category-labelled files, used whole (no held-out split)",
    )
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--embedder", type=Path, default=None, help="embedder manifest.json")
    t.add_argument("--holdout", type=int, default=20, help="percent held out for metrics")
    t.add_argument("--cv-folds", type=int, default=5, help="group folds for strong/weak CV")
    t.add_argument("--param", action="append", default=[], help="name=value, e.g. k=10")
    _label_options(t)


def _parser(
    subparsers: Subparsers,
    name: str,
    handler: Handler,
    help_text: str,
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text)
    wrapped = _guarded(name, handler)
    p.set_defaults(handler=wrapped, func=wrapped)
    return p


def _guarded(name: str, handler: Handler) -> Handler:
    """Run ``handler``; an operator mistake becomes one stderr line and an exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ConfigError as exc:
            code, message = 2, str(exc)
        except (ToolError, LabelledError, EvaluationError) as exc:
            code, message = getattr(exc, "code", 1), str(exc)
        print(f"routeiq {name}: {one_line(message)}", file=sys.stderr)
        return code

    return run


def _router_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="RoutingConfig whose spec.routing is used (default: the shipped one)",
    )
    p.add_argument("--strategy", default=None, help="override spec.routing.strategy")
    p.add_argument("--models-dir", default=None, help="override spec.routing.modelsDir")
    p.add_argument(
        "--premium-share",
        type=float,
        default=None,
        help="move the auto knob: fraction of traffic that may go to premium",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=default_workers(),
        help="prompts classified in parallel (default: one per CPU)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _label_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strong", default=None, help="the strong model (as named in the data)")
    p.add_argument("--weak", default=None, help="the weak model (as named in the data)")


def run_score(args: argparse.Namespace) -> int:
    """Handler of ``routeiq score``: read everything, classify in batches, then write."""
    ids, requests = read_prompt_lines(args.input)
    source = routing_source(args.config, args.strategy, args.models_dir)
    router = load_router(source, args.premium_share, batch_workers=True)
    results = classify_many(router, requests, label="score", workers=args.workers)
    results = as_traffic(router, results)
    write_lines(args.output, [score_record(i, c) for i, c in zip(ids, results, strict=True)])
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``routeiq eval``: strong/weak report, or category accuracy."""
    if args.input is not None and not (args.strong or args.weak):
        return _category_accuracy(args)
    from extproc.routing.eval_report import evaluate_router, format_text, parse_shares
    from extproc.routing.labelled import load_labelled

    shares = parse_shares(args.calibrate)
    if args.plot is not None:
        from extproc.routing.plot import require_matplotlib

        require_matplotlib()
    pair = load_labelled(args.labelled or [args.input], args.format).pair(args.strong, args.weak)
    source = routing_source(args.config, args.strategy, args.models_dir)
    router = load_router(source, args.premium_share, batch_workers=True)
    origin = source.origin + (
        f" (premium share set to {args.premium_share:g})" if args.premium_share is not None else ""
    )
    ev = evaluate_router(router, pair, origin, shares, workers=args.workers)
    if args.plot is not None:
        from extproc.routing.plot import write_plot

        write_plot(ev, args.plot)
    print(json.dumps(ev.as_dict(), indent=2) if args.json else format_text(ev))
    return 0


def _category_accuracy(args: argparse.Namespace) -> int:
    from extproc.routing.datasets import holdout, read_labelled
    from extproc.routing.metrics import accuracy

    try:
        data = read_labelled([args.input])
    except (OSError, ValueError) as exc:
        raise ToolError(f"{args.input}: {exc}") from None
    rows = [
        (t, y)
        for t, y in zip(data.texts, data.labels, strict=True)
        if args.holdout is None or holdout(t, args.holdout)
    ]
    if not rows:
        raise ToolError(f"no labelled rows to evaluate in {args.input}")
    source = routing_source(args.config, args.strategy, args.models_dir)
    router = load_router(source, batch_workers=True)
    requests = [request_of({"prompt": t}) for t, _ in rows]
    results = classify_many(router, requests, label="eval", workers=args.workers)
    predicted = [c.category for c in results]
    acc = accuracy(predicted, [y for _, y in rows])
    print(json.dumps({"strategy": router.spec.strategy, "n": len(predicted), "accuracy": acc}))
    return 0


def run_replay(args: argparse.Namespace) -> int:
    """Handler of ``routeiq replay``."""
    from extproc.config.snapshot import build_snapshot
    from extproc.routing.replay import (
        DEFAULT_OUTPUT_TOKENS,
        dumps,
        format_summary,
        read_logs,
        replay,
        summary,
        with_router,
    )

    contents = read_logs(args.log)
    snapshot = build_snapshot(args.config, with_router=False)
    try:
        source = routing_source(args.config, args.strategy)
        snapshot = with_router(snapshot, load_router(source, args.premium_share))
        rows = replay(snapshot, contents, args.default_output_tokens or DEFAULT_OUTPUT_TOKENS)
    finally:
        snapshot.close()
    doc = summary(rows, contents)
    print(dumps(doc) if args.json else format_summary(doc))
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``routeiq train`` (lazy import: scikit-learn is not a serving dependency)."""
    missing = [p for p in [*args.data, *args.extra] if not p.is_file()]
    if missing:
        raise ToolError(f"cannot read {missing[0]}: no such file")
    try:
        from extproc.routing.training_run import train_command

        code: int = train_command(args)
    except ImportError as exc:
        raise ToolError(f"train needs the training extras ({exc.name or exc})", 2) from None
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(f"{type(exc).__name__}: {exc}") from None
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m extproc.routing.cli train|score|eval|replay ...`` (same as ``routeiq``)."""
    parser = argparse.ArgumentParser(prog="routeiq")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
