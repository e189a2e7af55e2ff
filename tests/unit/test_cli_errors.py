"""Operator mistakes at the ``routeiq`` command line: one line on stderr, a non-zero
exit, never a traceback; ``-`` is stdin/stdout; progress only on a terminal.

(Busy ports and bad flag values at ``serve`` are in ``test_cli_serve.py``.)
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from extproc.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CHAT = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'


def routeiq(*args: str, stdin: bytes = b"", cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extproc.cli", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def one_line_error(out: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert out.returncode != 0, out.stdout
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_explain_header_without_colon_names_the_form() -> None:
    out = routeiq("explain", "--header", "x-team=support", stdin=CHAT)
    one_line_error(out, "'x-team=support'", "'name: value'")


def test_explain_missing_body_file() -> None:
    out = routeiq("explain", "--body", "/nonexistent/body.json")
    one_line_error(out, "cannot read --body /nonexistent/body.json", "No such file")


def test_explain_missing_config() -> None:
    out = routeiq("explain", "--config", "/nonexistent/routeiq.yaml", stdin=CHAT)
    one_line_error(out, "/nonexistent/routeiq.yaml")


def test_score_dash_is_stdin_and_stdout(tmp_path: Path) -> None:
    out = routeiq("score", "--input", "-", "--output", "-", stdin=b'{"id": "a", "prompt": "hi"}\n')
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert line["id"] == "a" and line["tier"] in ("free", "eco", "standard", "premium")
    assert not (REPO / "-").exists() and not (tmp_path / "-").exists()


@pytest.mark.parametrize(
    ("args", "stdin", "fragments"),
    [
        (
            ("score", "--input", "-", "--output", "-", "--strategy", "foo"),
            b'{"prompt": "hi"}\n',
            ("foo",),
        ),
        (("score", "--input", "-", "--output", "-"), b"not json\n", ("stdin:1", "not JSON")),
        (("score", "--input", "/nonexistent.jsonl", "--output", "-"), b"", ("cannot read",)),
        (("eval", "--labelled", "ROUTELLM", "--strong", "gpt4"), b"", ("gpt4", "available")),
        (
            ("train", "--strategy", "centroid", "--data", "/nonexistent.jsonl", "--out", "OUT"),
            b"",
            ("cannot read /nonexistent.jsonl",),
        ),
    ],
)
def test_routing_tool_mistakes(
    tmp_path: Path, args: tuple[str, ...], stdin: bytes, fragments: tuple[str, ...]
) -> None:
    routellm = tmp_path / "mmlu.csv"
    routellm.write_text("prompt,weak-model,strong-model\nWhat is 2+2?,True,True\n")
    argv = [
        str(routellm) if a == "ROUTELLM" else str(tmp_path / "o") if a == "OUT" else a for a in args
    ]
    one_line_error(routeiq(*argv, stdin=stdin), *fragments)


def test_train_bad_line_is_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "hi", "category": "chat"}\n{"bad\n')
    out = routeiq("train", "--strategy", "centroid", "--data", str(data), "--out", str(tmp_path))
    one_line_error(out, "routeiq train:")


def _labelled(path: Path) -> Path:
    rows = [
        {"prompt": f"{verb} number {i}", "category": cat}
        for i in range(6)
        for verb, cat in (("Say hello to", "chat"), ("Write a Python function for", "coding"))
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with stderr on a pseudo-terminal; its exit code and what it drew."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    drawn = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 180)
        if not ready:
            proc.kill()
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process exited
            break
        if not chunk:
            break
        drawn += chunk
    os.close(leader)
    return proc.wait(30), drawn.decode(errors="replace")


def test_train_shows_progress_only_on_a_terminal(tmp_path: Path) -> None:
    data = _labelled(tmp_path / "d.jsonl")
    argv = [sys.executable, "-m", "extproc.cli", "train", "--strategy", "centroid"]
    argv += ["--data", str(data), "--holdout", "0"]
    code, drawn = _on_a_terminal([*argv, "--out", str(tmp_path / "tty")])
    assert code == 0, drawn
    assert "embed: 12/12 (100%)" in drawn
    piped = routeiq(*argv[3:], "--out", str(tmp_path / "pipe"))
    assert piped.returncode == 0, piped.stderr
    assert "embed:" not in piped.stderr


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_help_texts_are_plain_text() -> None:
    """No reStructuredText markup from docstrings in any --help."""
    parsers = _parsers(build_parser())
    assert len(parsers) > 15
    for p in parsers:
        text = p.format_help()
        for markup in ("``", ":class:", ":func:", ":meth:"):
            assert markup not in text, (p.prog, text)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("score",), "required: --input, --output"),
        (("bogus",), "invalid choice: 'bogus'"),
        (("policy", "test", "--bogus"), "unrecognized arguments: --bogus"),
    ],
)
def test_argument_mistakes_are_one_line_too(args: tuple[str, ...], fragment: str) -> None:
    out = routeiq(*args)
    one_line_error(out, fragment, "--help")
    assert out.returncode == 2
