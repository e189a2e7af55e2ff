"""Labelled-file readers: tiny files for every rule, and the shared data files when present."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from extproc.routing.labelled import (
    LabelledError,
    detect_format,
    load_labelled,
    mmlu_pro_prompt,
    resolve_model,
)
from extproc.routing.progress import Progress

from .conftest import REPO

SHARED = REPO.parent / "shared" / "data" / "routing"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason="../shared/data/routing is not beside the checkout (CI puts it there)",
)


def test_mmlu_pro_prompt_is_what_the_model_saw() -> None:
    assert mmlu_pro_prompt("What is 2+2?", ["3", "4", "N/A"]) == (
        "Question:\nWhat is 2+2?\nOptions:\nA. 3\nB. 4\nAnswer: Let's think step by step."
    )


def test_model_names_resolve_uniquely_or_fail_with_the_list() -> None:
    models = ["gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat", "mistralai/mistral-7b-chat"]
    assert resolve_model("GPT-4-1106-PREVIEW", models, "--strong") == "gpt-4-1106-preview"
    assert resolve_model("mixtral-8x7b-chat", models, "--weak") == "mistralai/mixtral-8x7b-chat"
    assert resolve_model("mixtral", models, "--weak") == "mistralai/mixtral-8x7b-chat"
    with pytest.raises(LabelledError) as err:
        resolve_model("mistral", models, "--weak")  # two models contain it
    assert str(err.value) == (
        "unknown --weak model 'mistral'; available: gpt-4-1106-preview, "
        "mistralai/mixtral-8x7b-chat, mistralai/mistral-7b-chat"
    )


def test_routerbench_nulls_costs_and_the_pair(tmp_path: Path) -> None:
    path = tmp_path / "rb.jsonl"
    rows = [
        {"prompt": "a", "eval_name": "mbpp", "s": 1.0, "s|cost": 0.01, "w": 0.0, "w|cost": 0.001},
        {"prompt": "b", "eval_name": "mbpp", "s": None, "s|cost": None, "w": 1.0, "w|cost": 0.002},
        {"prompt": "c", "eval_name": "arc", "s": 1.0, "s|cost": 0.03, "w": 1.0, "w|cost": 0.003},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert detect_format(path) == "routerbench"
    data = load_labelled([path])
    assert data.models == ("s", "w")
    pair = data.pair("s", "w")
    assert pair.prompts == ("a", "c") and pair.skipped == 1 and pair.groups == ("mbpp", "arc")
    assert pair.strong_costs.tolist() == [0.01, 0.03] and pair.weak_scores.tolist() == [0, 1]
    assert pair.sources == ("routerbench", "routerbench")
    # two models, no default pair known: the better one on average (s: 1.0, w: 2/3) is strong
    assert data.default_pair() == ("s", "w")


def test_plain_jsonl_and_its_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text(
        json.dumps({"prompt": "x", "strong_score": 1, "weak_score": 0.5, "strong_cost": 2}) + "\n"
    )
    pair = load_labelled([path]).pair()
    assert (pair.strong, pair.weak) == ("strong", "weak")
    assert pair.weak_scores.tolist() == [0.5]
    assert pair.strong_costs.tolist() == [2.0] and np.isnan(pair.weak_costs).all()
    ok = '{"prompt": "x", "strong_score": 1, "weak_score": 0}\n'
    bad = [
        (
            '{"prompt": "x", "strong_score": 1, "weak_score": 2}\n',
            "plain.jsonl:1: 'weak_score' = 2.0 is outside [0, 1]",
        ),
        (
            '{"prompt": "", "strong_score": 1, "weak_score": 0}\n',
            "plain.jsonl:1: the prompt is missing or not text",
        ),
        (
            ok + "{oops\n",
            "plain.jsonl:2: not JSON (Expecting property name enclosed in double quotes)",
        ),
        (
            '{"prompt": "x", "strong_score": 1, "weak_score": "yes"}\n',
            "plain.jsonl:1: 'weak_score' is not a score: 'yes'",
        ),
    ]
    for text, message in bad:
        path.write_text(text)
        with pytest.raises(LabelledError) as err:
            load_labelled([path]).pair()
        assert str(err.value) == f"{path.parent}/{message}"


def test_formats_that_cannot_be_told(tmp_path: Path) -> None:
    csv_file = tmp_path / "x.csv"
    csv_file.write_text("text,label\nhello,chat\n")
    with pytest.raises(LabelledError, match=r"x\.csv: cannot tell the format"):
        load_labelled([csv_file])
    with pytest.raises(LabelledError, match="unknown format 'csv'"):
        load_labelled([csv_file], "csv")
    with pytest.raises(LabelledError, match="cannot read"):
        load_labelled([tmp_path])
    weak_only = tmp_path / "y.csv"
    weak_only.write_text("prompt,a,b\nhi,True,False\n")
    with pytest.raises(LabelledError, match="unknown --weak model 'c'; available: a, b"):
        load_labelled([weak_only]).pair("a", "c")
    same = load_labelled([weak_only])
    with pytest.raises(LabelledError, match="the same model: a"):
        same.pair("a", "A")


@needs_shared
def test_the_shared_files() -> None:
    """The four shapes as they are on disk (row counts and qualities from SOURCES.md)."""
    routellm = load_labelled(sorted((SHARED / "routellm_mmlu_train").glob("*.csv")))
    pair = routellm.pair()
    assert len(pair.prompts) == 7658 and pair.strong == "gpt-4-1106-preview"
    assert pair.strong_scores.mean() == pytest.approx(0.831, abs=0.001)
    pro = load_labelled([SHARED / "mmlu_pro_correctness.csv"])
    assert len(pro.rows) == 9063 and len(pro.models) == 10
    assert pro.pair().strong_scores.mean() == pytest.approx(0.70, abs=0.005)
    assert pro.rows[0].prompt.startswith("Question:\n") and pro.rows[0].group
    bench = load_labelled([SHARED / "routerbench_arc_mbpp_winogrande.jsonl"]).pair()
    assert (len(bench.prompts), bench.skipped) == (3164, 14)
    assert (bench.strong_costs > 0).all() and (bench.weak_costs > 0).all()
    assert set(bench.groups) == {"arc-challenge", "mbpp", "winogrande"}


def test_progress_draws_only_on_a_terminal() -> None:
    """A real pseudo-terminal gets the counter; a pipe gets nothing."""
    master, slave = os.openpty()
    with open(slave, "w") as tty, Progress("score", 3, stream=tty, interval_s=0.0) as progress:
        assert progress.enabled
        progress.advance(2)
        progress.advance(1)
    drawn = os.read(master, 4096).decode()
    os.close(master)
    assert "\rscore: 2/3 (67%)" in drawn and "\rscore: 3/3 (100%)" in drawn
    assert drawn.endswith("\r\n") or drawn.endswith("\n")
    read_end, write_end = os.pipe()
    with open(write_end, "w") as pipe, Progress("score", 3, stream=pipe) as progress:
        assert not progress.enabled
        progress.advance(3)
    with open(read_end) as fh:
        assert fh.read() == ""
