"""``routeiq report FILE...``: routing mix, spend, refusals and overhead from decision logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson


def build_report(paths: list[Path]) -> dict[str, Any]:
    """Read every line of ``paths`` (rotated files oldest first) into the report document."""
    from extproc.report.aggregate import ReportBuilder
    from extproc.report.reader import lines

    builder = ReportBuilder()
    feed = builder.feed
    for line in lines(paths):
        feed(line)
    return builder.result()


def _cmd_report(args: argparse.Namespace) -> int:
    from extproc.report.reader import ordered

    paths = ordered(Path(p) for p in args.files)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"routeiq: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        report = build_report(paths)
    except OSError as exc:  # unreadable file, corrupt gzip
        print(f"routeiq: {exc}", file=sys.stderr)
        return 2
    names = [str(p) for p in paths]
    if args.html:
        from extproc.report.html import render_html

        Path(args.html).write_text(render_html(report, names), encoding="utf-8")
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    elif not args.html or args.format == "text":
        from extproc.report.text import render_text

        sys.stdout.write(render_text(report, names))
    return 0


def register(sub: Any) -> None:
    """Add ``report`` to the ``routeiq`` subcommands."""
    rep = sub.add_parser(
        "report",
        help="routing mix, spend and savings, refusals and overhead from decision logs",
        description="Read decision-log files (rotated and .gz too) and summarise them.",
    )
    rep.add_argument("files", nargs="+", help="decision-log files (e.g. routeiq-decisions.jsonl*)")
    rep.add_argument(
        "--format",
        choices=("text", "json"),
        default=None,
        help="stdout format (default text; with --html only the file is written)",
    )
    rep.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    rep.set_defaults(func=_cmd_report)
