"""``routeiq score | eval | train`` on tiny files, through the real argparse registration,
the real embedder, the shipped models and real configs."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from extproc.routing.cli import main, register
from extproc.routing.strategies import load_model
from tests.fixtures.configs import category_rule_config, embedded_policy, write_config

from .conftest import MODELS, REPO, TINY


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="routeiq")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line a mistake must produce (never a traceback)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


REFERENCE = [
    f"{verb} {thing}"
    for verb in ("Write", "Explain", "Summarise", "Translate")
    for thing in (
        "a haiku about snow.",
        "a SQL query that counts orders per day.",
        "the proof that there are infinitely many primes.",
        "this meeting note into three bullets.",
        "hello to Maria.",
        "a Python function that parses ISO dates.",
    )
]

NO_MARKERS = [p for p in REFERENCE if "proof" not in p][:8]


def plain_config(tmp_path: Path) -> Path:
    """The e2e config with the category tiers (no cost-quality rule, hence no knob)."""
    routing = {"modelsDir": str(MODELS)}
    return write_config(tmp_path / "plain.yaml", routing=routing, policy=embedded_policy())


def knob_config(tmp_path: Path) -> Path:
    """The e2e config (eco, standard, premium, free backends) with the cost-quality rule on:
    the shipped strong/weak scorer as the need model, calibrated on 24 reference prompts,
    no category ceilings (so 100% premium means every prompt)."""
    ref = tmp_path / "reference.jsonl"
    ref.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in REFERENCE))
    routing = {
        "modelsDir": str(MODELS),
        "costQuality": {"model": "strongweak", "referencePrompts": str(ref), "ceilings": {}},
    }
    return write_config(tmp_path / "knob.yaml", routing=routing, policy=embedded_policy())


# -- score ---------------------------------------------------------------------------------


def score_three_lines(tmp_path: Path, *options: str) -> list[dict[str, Any]]:
    """A prompt line, an OpenAI body and a line without id, scored: the contract's fields."""
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"id": "a", "prompt": "Write a Python function that reverses a string."},
        {"id": "b", "model": "gpt-4o", "messages": [{"role": "user", "content": "hi there!"}]},
        {"prompt": "Translate 'thank you' into Japanese."},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert run("score", "--input", str(src), "--output", str(out), *options) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", 3]
    assert [r["category"] for r in rows] == ["coding", "chat", "translation"]
    assert all(
        0.0 <= r["score"] <= 1.0 and set(r) == {"id", "category", "tier", "score"} for r in rows
    )
    return rows


def test_score_prompts_and_openai_bodies(tmp_path: Path) -> None:
    """Under the shipped config (the learned cost-quality rule at 30% premium, 30% eco),
    ``score`` is the need and ``tier`` the cheapest tier whose calibrated bar it clears;
    small talk stays on eco (the default ceiling ``chat: eco``) whatever its need."""
    from extproc.routing.scoring import load_router, routing_source

    rows = score_three_lines(tmp_path)
    router = load_router(routing_source(None))
    assert router.quality is not None
    _, bars, _ = router.quality.bars_for("auto")
    assert (bars.premium_share, bars.eco_share) == (0.3, 0.3) and bars.eco < bars.premium
    assert rows[1]["tier"] == "eco"
    for row in (rows[0], rows[2]):
        assert row["tier"] == bars.tier(row["score"])[0], (row, bars)


def test_score_under_the_category_rule(tmp_path: Path) -> None:
    """The shipped config without ``costQuality``: the category table's tiers."""
    config = category_rule_config(tmp_path / "category-rule.yaml")
    rows = score_three_lines(tmp_path, "--config", str(config))
    assert [r["tier"] for r in rows] == ["standard", "eco", "eco"]


def test_score_equals_the_serving_path(tmp_path: Path) -> None:
    """Parallel scoring returns lines in input order with exactly what a per-request
    ``Router.classify`` (the serving path) gives: category, tier and score."""
    from extproc.routing.scoring import load_router, request_of, routing_source

    prompts = [t for ts in TINY.values() for t in ts] + NO_MARKERS
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(prompts))
    )
    config = knob_config(tmp_path)
    assert run("score", "--input", str(src), "--output", str(out), "--config", str(config)) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(len(prompts)))
    router = load_router(routing_source(config))
    single = [router.classify(request_of({"prompt": p})) for p in prompts]
    assert [(r["category"], r["tier"]) for r in rows] == [(c.category, c.tier) for c in single]
    assert [r["score"] for r in rows] == pytest.approx([c.score for c in single], abs=1e-6)
    assert {r["tier"] for r in rows} >= {"eco", "standard"}


def test_score_stdin_to_stdout() -> None:
    """``-`` is stdin and stdout (``--output -`` used to write a file named ``-``)."""
    lines = "".join(
        json.dumps({"id": i, "prompt": p}) + "\n"
        for i, p in enumerate(["hello!", "Implement quicksort in Rust."])
    )
    done = subprocess.run(
        [sys.executable, "-m", "extproc.routing.cli", "score", "--input", "-", "--output", "-"],
        input=lines,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress output when stderr is not a terminal
    rows = [json.loads(x) for x in done.stdout.splitlines()]
    assert [(r["id"], r["category"]) for r in rows] == [(0, "chat"), (1, "coding")]
    assert not (REPO / "-").exists()


def test_score_empty_stdin_is_one_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "extproc.routing.cli", "score", "--input", "-", "--output", "-"],
        input="",
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == "routeiq score: stdin: no input lines\n"


def test_score_premium_share_moves_the_tier(tmp_path: Path) -> None:
    """``--premium-share`` overrides the config's knob: 1.0 sends everything to premium,
    0.0 nothing; the score (the need) does not depend on the knob."""
    config = knob_config(tmp_path)
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(NO_MARKERS))
    )
    tiers = {}
    scores = {}
    for share in ("0", "1"):
        out = tmp_path / f"out{share}.jsonl"
        assert (
            run(
                "score",
                "--input",
                str(src),
                "--output",
                str(out),
                "--config",
                str(config),
                "--premium-share",
                share,
            )
            == 0
        )
        rows = [json.loads(x) for x in out.read_text().splitlines()]
        tiers[share] = {r["tier"] for r in rows}
        scores[share] = [r["score"] for r in rows]
    assert tiers["1"] == {"premium"}
    assert "premium" not in tiers["0"]
    assert scores["0"] == scores["1"]


# -- eval ----------------------------------------------------------------------------------

# Six prompts; the strong model is right on all but the last, the weak one on three.
# No reasoning marker in them: the default signal rule would floor those at premium.
SW_ROWS = [
    ("What is 2+2?", 1, 1),
    ("Compute the integral of x^2 e^x dx.", 1, 0),
    ("hello", 1, 1),
    ("Find the closed form of a(n) = 3a(n-1) + 2 with a(0) = 1.", 1, 0),
    ("Name the capital of France.", 1, 1),
    ("Solve this olympiad inequality for positive reals a, b and c.", 0, 0),
]
STRONG_MODEL, WEAK_MODEL = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def write_format(tmp_path: Path, fmt: str) -> Path:
    """The same six labelled prompts in one of the four formats."""
    if fmt == "routellm":
        path = tmp_path / "mmlu_tiny.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["prompt", WEAK_MODEL, STRONG_MODEL])
            w.writerows([p, bool(wk), bool(st)] for p, st, wk in SW_ROWS)
    elif fmt == "mmlu-pro":
        path = tmp_path / "mmlu_pro_tiny.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                [
                    "question_id",
                    "category",
                    "src",
                    "question",
                    "options",
                    "answer",
                    "Mixtral-8x7B-Instruct-v0.1",
                    "gemini-1.5-pro-002",
                    "Yi-6b-Chat",
                ]
            )
            w.writerows(
                [i, "math", "stemez-x", p, json.dumps(["1", "2", "N/A"]), "A", wk, st, 0]
                for i, (p, st, wk) in enumerate(SW_ROWS)
            )
    elif fmt == "routerbench":
        path = tmp_path / "rb_tiny.jsonl"
        path.write_text(
            "".join(
                json.dumps(
                    {
                        "sample_id": f"x.{i}",
                        "eval_name": "arc-challenge",
                        "split": "test",
                        "prompt": p,
                        "gpt-4-1106-preview": float(st),
                        "gpt-4-1106-preview|cost": 0.004,
                        "mistralai/mixtral-8x7b-chat": float(wk),
                        "mistralai/mixtral-8x7b-chat|cost": 0.001,
                    }
                )
                + "\n"
                for i, (p, st, wk) in enumerate(SW_ROWS)
            )
        )
    else:
        path = tmp_path / "plain.jsonl"
        path.write_text(
            "".join(
                json.dumps({"prompt": p, "strong_score": st, "weak_score": wk}) + "\n"
                for p, st, wk in SW_ROWS
            )
        )
    return path


@pytest.mark.parametrize("fmt", ["routellm", "mmlu-pro", "routerbench", "jsonl"])
def test_eval_each_format(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    path = write_format(tmp_path, fmt)
    assert run("eval", "--labelled", str(path), "--json", "--calibrate", "none") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 6
    assert report["quality_strong"] == pytest.approx(5 / 6)
    assert report["quality_weak"] == pytest.approx(3 / 6)
    # oracle: two gains out of six prompts -> PGR min(3p, 1), area 1 - 1/6
    assert report["apgr_oracle"] == pytest.approx(1 - 1 / 6)
    assert 0.0 <= report["apgr"] <= 1.0
    assert set(report) >= {"cpt50", "cpt80", "cpt95", "default", "calibration"}
    default = report["default"]
    assert default["lift_over_random"] == pytest.approx(
        default["quality_recovered"] - default["premium_share"]
    )
    if fmt == "routerbench":  # real per-call costs: strong 0.004, weak 0.001
        assert report["mean_cost_strong"] == pytest.approx(0.004)
        assert default["mean_cost"] == pytest.approx(0.001 + 0.003 * default["premium_share"])
    else:
        assert default["mean_cost"] is None
    assert report["calibration"] == [] and report["notes"] == []


def test_eval_strong_weak_from_input_and_text_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--input FILE --strong --weak`` still evaluates strong/weak data; text by default."""
    path = write_format(tmp_path, "routellm")
    config = plain_config(tmp_path)
    assert (
        run(
            "eval",
            "--input",
            str(path),
            "--strong",
            "gpt-4",
            "--weak",
            "mixtral",
            "--config",
            str(config),
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith(f"6 prompts; strong {STRONG_MODEL}: 0.8333, weak {WEAK_MODEL}: 0.5000")
    assert "APGR " in out and "CPT(95%)" in out and "config's operating point" in out
    assert out.rstrip().endswith(
        "note: calibration skipped: the config has no cost-quality knob (spec.routing.costQuality)"
    )


def test_eval_calibration_with_the_knob(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Asking the knob for 0% and 100% premium gets exactly that; the report says so."""
    path = write_format(tmp_path, "jsonl")
    assert (
        run(
            "eval",
            "--labelled",
            str(path),
            "--config",
            str(knob_config(tmp_path)),
            "--calibrate",
            "0,1",
            "--json",
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    got = [(c["asked"], c["got"]) for c in report["calibration"]]
    assert got == [(0.0, 0.0), (1.0, 1.0)]
    assert report["calibration"][1]["quality_recovered"] == pytest.approx(1.0)
    assert report["notes"] == []


def test_eval_takes_a_set_of_20_or_more_as_its_traffic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped config calibrates on traffic: a labelled set of 24 prompts is taken as
    the traffic (its own needs set the bars), so asked shares are got (less what the chat
    ceiling holds down), and the note says
    where the reference bars alone would have put it."""
    rows = [(p, st, wk) for _ in range(4) for p, st, wk in SW_ROWS]
    path = tmp_path / "24.jsonl"
    path.write_text(
        "".join(
            json.dumps({"prompt": f"{i}: {p}", "strong_score": st, "weak_score": wk}) + "\n"
            for i, (p, st, wk) in enumerate(rows)
        )
    )
    assert run("eval", "--labelled", str(path), "--calibrate", "0.25,0.5", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 24
    got = [(c["asked"], c["got"]) for c in report["calibration"]]
    assert [a for a, _ in got] == [0.25, 0.5]
    # the bars give the share exactly; the chat ceiling may hold a prompt or two on eco
    assert all(a - 2 / 24 <= g <= a for a, g in got), got
    (note,) = report["notes"]
    assert note.startswith("bars set on this set's own needs") and "reference bars alone" in note


def test_eval_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="--plot needs the dev/train extra (matplotlib)")
    png = tmp_path / "curve.png"
    assert (
        run(
            "eval",
            "--labelled",
            str(write_format(tmp_path, "jsonl")),
            "--plot",
            str(png),
            "--calibrate",
            "none",
        )
        == 0
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "APGR" in capsys.readouterr().out


def test_eval_plot_without_matplotlib_is_one_line(tmp_path: Path) -> None:
    """Blocking the import (``sys.modules[name] = None``) stands for "not installed"."""
    path = write_format(tmp_path, "jsonl")
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from extproc.routing.cli import main\n"
        f"raise SystemExit(main(['eval', '--labelled', {str(path)!r}, '--plot', 'x.png']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("routeiq eval: --plot needs matplotlib")
    assert done.stderr.count("\n") == 1 and not (tmp_path / "x.png").exists()


def test_eval_category_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "labelled.jsonl"
    java = "Implement a stack class in Java with push and pop methods."
    rows = [
        {"prompt": java, "category": "coding"},
        {"prompt": "good morning, how are you?", "category": "chat"},
        {"prompt": "Write a haiku about snow.", "category": "math"},
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows))
    assert run("eval", "--input", str(src)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 3
    assert report["accuracy"] == pytest.approx(2 / 3)
    # --holdout keeps only rows of the held-out split; 0% keeps none, which is an error.
    assert run("eval", "--input", str(src), "--holdout", "0") == 1
    assert "no labelled rows" in one_error_line(capsys)
    assert run("eval", "--input", str(src), "--holdout", "100") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3


# -- every mistake: one line on stderr, non-zero exit ----------------------------------------


def _bad_json(tmp: Path) -> list[str]:
    (tmp / "in.jsonl").write_text('{"id": 1, "prompt": "fine"}\n\n{"id": 2, "prompt": \n')
    return ["score", "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "o.jsonl")]


def _no_prompt(tmp: Path) -> list[str]:
    (tmp / "in.jsonl").write_text(json.dumps({"id": 1, "text": 5}) + "\n")
    return ["score", "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "o.jsonl")]


def _score(tmp: Path, *extra: str) -> list[str]:
    (tmp / "in.jsonl").write_text(json.dumps({"id": 1, "prompt": "hi"}) + "\n")
    return ["score", "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "o"), *extra]


def _eval(tmp: Path, *extra: str) -> list[str]:
    return ["eval", "--labelled", str(write_format(tmp, "mmlu-pro")), *extra]


def _bad_labelled(tmp: Path) -> list[str]:
    (tmp / "l.jsonl").write_text(json.dumps({"prompt": "x", "strong_score": 1}) + "\n")
    return ["eval", "--labelled", str(tmp / "l.jsonl")]


MISTAKES = {
    "missing input": (
        lambda t: ["score", "--input", str(t / "nope.jsonl"), "--output", "-"],
        1,
        "routeiq score: cannot read",
    ),
    "bad JSON line": (_bad_json, 1, "in.jsonl:3: not JSON"),
    "line without a prompt": (_no_prompt, 1, "in.jsonl:1: the line needs 'prompt'"),
    "unknown strategy": (
        lambda t: _score(t, "--strategy", "foo"),
        2,
        "strategies without an entry in 'artefacts': ['foo']",
    ),
    "missing config": (
        lambda t: _score(t, "--config", str(t / "none.yaml")),
        2,
        "none.yaml: No such file",
    ),
    "knob without the rule": (
        lambda t: _score(t, "--config", str(plain_config(t)), "--premium-share", "0.3"),
        2,
        "--premium-share: the cost-quality rule is off",
    ),
    "share out of range": (
        lambda t: _score(t, "--premium-share", "3"),
        2,
        "--premium-share must be within 0..1",
    ),
    "unknown --strong": (
        lambda t: _eval(t, "--strong", "gpt4"),
        1,
        "unknown --strong model 'gpt4'; available: Mixtral-8x7B-Instruct-v0.1, "
        "gemini-1.5-pro-002, Yi-6b-Chat",
    ),
    "same model twice": (
        lambda t: _eval(t, "--strong", "yi", "--weak", "Yi-6b-Chat"),
        1,
        "--strong and --weak are the same model",
    ),
    "missing labelled file": (
        lambda t: ["eval", "--labelled", str(t / "none.csv")],
        1,
        "cannot read",
    ),
    "labelled line without weak score": (_bad_labelled, 1, "l.jsonl:1: a JSON line needs"),
    "bad calibration shares": (
        lambda t: _eval(t, "--calibrate", "a,b"),
        1,
        "--calibrate wants shares",
    ),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    make, code, expected = MISTAKES[name]
    assert run(*make(tmp_path)) == code
    line = one_error_line(capsys)
    assert line.startswith("routeiq ") and expected in line, line


# -- train and entry points ----------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["centroid", "linear"])
def test_train_writes_a_verified_artefact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str
) -> None:
    src = tmp_path / "train.jsonl"
    src.write_text(
        "\n".join(json.dumps({"prompt": t, "category": c}) for c, ts in TINY.items() for t in ts)
    )
    out = tmp_path / strategy
    assert (
        run(
            "train", "--strategy", strategy, "--data", str(src), "--holdout", "0", "--out", str(out)
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["train"] == 9
    loaded = load_model(out)
    assert loaded.model.classes == ("chat", "coding", "math")
    manifest = loaded.manifest.data
    assert manifest["training"]["data"][str(src)]["sha256"]
    assert "routeiq train" in manifest["training"]["recipe"]


def test_module_entry_point(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 7, "prompt": "hello!"}) + "\n")
    assert main(["score", "--input", str(src), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["id"] == 7


def test_registered_in_the_routeiq_command(tmp_path: Path) -> None:
    from extproc.cli import main as routeiq

    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "z", "prompt": "Write a bash script that counts lines."}))
    assert routeiq(["score", "--input", str(src), "--output", str(out)]) == 0
    assert json.loads(out.read_text())["category"] == "coding"


def test_eval_notes_prompts_the_router_cannot_tell_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Identical embedded text (here: the same prompt twice) gets one score: said so."""
    path = tmp_path / "ties.jsonl"
    rows = [*SW_ROWS[:4], SW_ROWS[1]]
    path.write_text(
        "".join(
            json.dumps({"prompt": p, "strong_score": s, "weak_score": w}) + "\n" for p, s, w in rows
        )
    )
    assert run("eval", "--labelled", str(path), "--calibrate", "none", "--json") == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert notes == [
        "40% of the prompts share one score (identical embedded text, e.g. the "
        "same few-shot preamble cut at maxTokens): the router cannot rank them"
    ]
