"""``routeiq score | eval | train`` on tiny files, through the real argparse registration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from extproc.routing.classifiers import load_model
from extproc.routing.cli import main, register

from .conftest import TINY


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="routeiq")
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(list(argv))
    code: int = args.handler(args)
    return code


def test_score_prompts_and_openai_bodies(tmp_path: Path) -> None:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [
        {"id": "a", "prompt": "Write a Python function that reverses a string."},
        {"id": "b", "model": "gpt-4o", "messages": [{"role": "user", "content": "hi there!"}]},
        {"prompt": "Translate 'thank you' into Japanese."},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert run("score", "--input", str(src), "--output", str(out)) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", 3]
    assert [r["category"] for r in rows] == ["coding", "chat", "translation"]
    assert [r["tier"] for r in rows] == ["standard", "eco", "eco"]
    assert all(0.0 <= r["score"] <= 1.0 and set(r) == {"id", "category", "tier", "score"}
               for r in rows)


def test_score_reports_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": 1, "text": 5}) + "\n")
    assert run("score", "--input", str(src), "--output", str(tmp_path / "o")) == 1
    assert "in.jsonl:1" in capsys.readouterr().err


def test_eval_category_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "labelled.jsonl"
    java = "Implement a stack class in Java with push and pop methods."
    rows = [{"prompt": java, "category": "coding"},
            {"prompt": "good morning, how are you?", "category": "chat"},
            {"prompt": "Write a haiku about snow.", "category": "math"}]
    src.write_text("\n".join(json.dumps(r) for r in rows))
    assert run("eval", "--input", str(src)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 3
    assert report["accuracy"] == pytest.approx(2 / 3)
    # --holdout keeps only rows of the held-out split; 0% keeps none, which is an error.
    assert run("eval", "--input", str(src), "--holdout", "0") == 1
    assert "no labelled rows" in capsys.readouterr().err
    assert run("eval", "--input", str(src), "--holdout", "100") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 3


def test_eval_strong_weak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "sw.csv"
    src.write_text(
        "prompt,strong,weak\n"
        "What is 2+2?,True,True\n"
        "Prove the Riemann hypothesis for this special case step by step.,True,False\n"
        "hello,True,True\n"
        "Derive the closed form of this recurrence rigorously.,True,False\n"
    )
    assert run("eval", "--input", str(src), "--strong", "strong", "--weak", "weak") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["quality_strong"] == 1.0 and report["quality_weak"] == 0.5
    assert 0.0 <= report["apgr"] <= 1.0
    assert 0.0 < report["cpt80"] <= 1.0


@pytest.mark.parametrize("strategy", ["centroid", "linear"])
def test_train_writes_a_verified_artefact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str
) -> None:
    src = tmp_path / "train.jsonl"
    src.write_text("\n".join(json.dumps({"prompt": t, "category": c})
                             for c, ts in TINY.items() for t in ts))
    out = tmp_path / strategy
    assert run("train", "--strategy", strategy, "--data", str(src), "--holdout", "0",
               "--out", str(out)) == 0
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
