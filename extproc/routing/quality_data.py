"""The shared routing data as one table for the quality model (training/evaluation only).

Every prompt of the four sources becomes a row with: the text the router would embed, the
``family`` it is evaluated as (one benchmark), a ``bench`` tag (the benchmark its question
comes from, shared across sources: MMLU questions appear in RouteLLM, MMLU-Pro's
``ori_mmlu`` rows and LLMRouter's ``mmlu`` task), a ``group`` (subject or task), a ``key``
(normalised question text, for duplicate checks) and one column per model of its source
with that model's score (NaN for models of other sources).

Text choices: RouterBench's ARC and Winogrande prompts are few-shot; only the last block
(the question asked) is kept, which is what a user's request looks like. MMLU-Pro's
question and options are laid out like RouteLLM's MMLU prompts. The files are read from
the data directory, never copied.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.embedders import TextEmbedder

ROUTELLM_STRONG, ROUTELLM_WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
PRO_STRONG, PRO_WEAK = "gemini-1.5-pro-002", "Mixtral-8x7B-Instruct-v0.1"
RB_STRONG, RB_WEAK = "gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"
LR_STRONG, LR_WEAK = "llama-3.1-nemotron-51b-instruct", "mistral-7b-instruct-v0.3"

# Family -> (source, strong column, weak column) of the pair used for APGR.
PAIRS: dict[str, tuple[str, str, str]] = {
    "routellm-mmlu": ("routellm", ROUTELLM_STRONG, ROUTELLM_WEAK),
    "mmlu-pro": ("mmlu_pro", PRO_STRONG, PRO_WEAK),
    "arc": ("routerbench", RB_STRONG, RB_WEAK),
    "mbpp": ("routerbench", RB_STRONG, RB_WEAK),
    "winogrande": ("routerbench", RB_STRONG, RB_WEAK),
    "llmrouter": ("llmrouter", LR_STRONG, LR_WEAK),
}
_RB_FAMILY = {"arc-challenge": "arc", "mbpp": "mbpp", "winogrande": "winogrande"}
_LR_BENCH = {"mmlu": "mmlu", "arc_challenge": "arc", "mbpp": "mbpp"}
SOURCE_FILES = {
    "routellm": "routellm_mmlu_train",
    "mmlu_pro": "mmlu_pro_correctness.csv",
    "routerbench": "routerbench_arc_mbpp_winogrande.jsonl",
    "llmrouter": "llmrouter_dcrouter_train.json",
}


@dataclass
class Rows:
    """Row-wise fields being collected, turned into :class:`QualityData` at the end."""

    texts: list[str]
    family: list[str]
    bench: list[str]
    group: list[str]
    origin: list[str]
    scores: list[dict[str, float]]

    def add(
        self,
        text: str,
        family: str,
        bench: str,
        group: str,
        scores: dict[str, float],
        origin: str = "",
    ) -> None:
        self.texts.append(text)
        self.family.append(family)
        self.bench.append(bench)
        self.group.append(group)
        self.origin.append(origin or group)
        self.scores.append(scores)


@dataclass(frozen=True)
class QualityData:
    """All rows; ``scores[:, j]`` is model ``columns[j]`` (``source/model``), NaN if absent."""

    texts: tuple[str, ...]
    family: npt.NDArray[np.str_]
    bench: npt.NDArray[np.str_]
    group: npt.NDArray[np.str_]
    key: npt.NDArray[np.str_]
    origin: npt.NDArray[np.str_]
    columns: tuple[str, ...]
    scores: npt.NDArray[np.float64]

    def column(self, source: str, model: str) -> int:
        return self.columns.index(f"{source}/{model}")

    def pair(self, family: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Strong and weak scores of ``family``'s rows (its APGR pair)."""
        source, strong, weak = PAIRS[family]
        rows = self.family == family
        return (
            self.scores[rows, self.column(source, strong)],
            self.scores[rows, self.column(source, weak)],
        )


def question_key(text: str) -> str:
    """Lower-case alphanumerics of the question stem (before the options), first 160."""
    stem = re.split(r"\n\s*\(?A[.)]\s", text, maxsplit=1)[0]
    return re.sub(r"[^a-z0-9]+", "", stem.lower())[:160]


def _read_routellm(root: Path, rows: Rows) -> None:
    for path in sorted((root / SOURCE_FILES["routellm"]).glob("mmlu_*.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                scores = {m: _flag(row[m]) for m in (ROUTELLM_STRONG, ROUTELLM_WEAK)}
                rows.add(row["prompt"], "routellm-mmlu", "mmlu", path.stem, scores)


def _pro_text(question: str, options: list[str]) -> str:
    letters = "ABCDEFGHIJ"
    lines = [question.strip()] + [f"{letters[i]}. {o}" for i, o in enumerate(options)]
    return "\n".join(lines) + "\nAnswer:"


def _read_mmlu_pro(root: Path, rows: Rows) -> None:
    with (root / SOURCE_FILES["mmlu_pro"]).open(newline="") as fh:
        reader = csv.DictReader(fh)
        fixed = {"question_id", "category", "src", "question", "options", "answer"}
        for row in reader:
            models = [k for k in row if k not in fixed]
            text = _pro_text(row["question"], json.loads(row["options"]))
            bench = "mmlu" if row["src"].startswith("ori_mmlu") else "mmlu-pro"
            rows.add(text, "mmlu-pro", bench, row["category"], {m: _flag(row[m]) for m in models})


def last_block(prompt: str) -> str:
    """The question a few-shot prompt asks: its last blank-line separated block."""
    blocks = [b for b in prompt.strip().split("\n\n") if b.strip()]
    return blocks[-1].strip() if blocks else prompt


def _read_routerbench(root: Path, rows: Rows) -> None:
    with (root / SOURCE_FILES["routerbench"]).open() as fh:
        for line in fh:
            row = json.loads(line)
            family = _RB_FAMILY[row["eval_name"]]
            models = [
                k
                for k in row
                if "|" not in k and k not in ("sample_id", "eval_name", "split", "prompt")
            ]
            scores = {m: _flag(row[m]) for m in models}
            text = row["prompt"] if family == "mbpp" else last_block(row["prompt"])
            rows.add(text, family, family, family, scores)


def _read_llmrouter(root: Path, rows: Rows) -> None:
    tasks: dict[str, str] = {}
    with (root / "llmrouter_query_train.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            tasks[row["query"]] = row["task_name"]
    for row in json.loads((root / SOURCE_FILES["llmrouter"]).read_text()):
        raw = row["scores"]
        scores: dict[str, Any] = ast.literal_eval(raw) if isinstance(raw, str) else raw
        task = tasks.get(row["question"], "unknown")
        rows.add(
            row["question"],
            "llmrouter",
            _LR_BENCH.get(task, f"llmrouter-{task}"),
            task,
            {m: float(v) for m, v in scores.items()},
        )


def _flag(value: Any) -> float:
    if value is None or value == "":
        return float("nan")
    if isinstance(value, str):
        v = value.strip().lower()
        return 1.0 if v in ("true", "1", "1.0") else 0.0 if v in ("false", "0", "0.0") else float(v)
    return float(value)


def load_quality_data(root: Path) -> QualityData:
    """Every row of the four sources under ``root`` (the shared data directory)."""
    rows = Rows([], [], [], [], [], [])
    sources = (
        ("routellm", _read_routellm),
        ("mmlu_pro", _read_mmlu_pro),
        ("routerbench", _read_routerbench),
        ("llmrouter", _read_llmrouter),
    )
    columns: list[str] = []
    prefixed: list[dict[str, float]] = []
    for source, reader in sources:
        start = len(rows.texts)
        reader(root, rows)
        for scores in rows.scores[start:]:
            named = {f"{source}/{m}": v for m, v in scores.items()}
            columns.extend(c for c in named if c not in columns)
            prefixed.append(named)
    matrix = np.full((len(rows.texts), len(columns)), np.nan)
    index = {c: j for j, c in enumerate(columns)}
    for i, named in enumerate(prefixed):
        for c, v in named.items():
            matrix[i, index[c]] = v
    return QualityData(
        texts=tuple(rows.texts),
        family=np.asarray(rows.family),
        bench=np.asarray(rows.bench),
        group=np.asarray(rows.group),
        key=np.asarray([question_key(t) for t in rows.texts]),
        origin=np.asarray(rows.origin),
        columns=tuple(columns),
        scores=matrix,
    )


def data_hashes(root: Path) -> dict[str, str]:
    """sha256 of every data file read, for the manifest (paths relative to ``root``)."""
    paths: Iterable[Path] = [
        *sorted((root / SOURCE_FILES["routellm"]).glob("mmlu_*.csv")),
        root / SOURCE_FILES["mmlu_pro"],
        root / SOURCE_FILES["routerbench"],
        root / SOURCE_FILES["llmrouter"],
        root / "llmrouter_query_train.jsonl",
    ]
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    }


def embed_cached(
    texts: tuple[str, ...], embedder: TextEmbedder, cache: Path, embedder_sha: str
) -> npt.NDArray[np.float32]:
    """Embeddings of ``texts``, reusing ``cache`` (an npz keyed by text sha256 and the
    embedder's hash); only texts not yet cached are embedded, then the cache is rewritten."""
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    known: dict[str, npt.NDArray[np.float32]] = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as npz:
            if str(npz["embedder"]) == embedder_sha:
                known = dict(zip((str(h) for h in npz["hashes"]), npz["vectors"], strict=True))
    missing = sorted({h: t for h, t in zip(hashes, texts, strict=True) if h not in known}.items())
    if missing:
        vectors = embedder.embed_many([t for _, t in missing])
        known.update({h: v for (h, _), v in zip(missing, vectors, strict=True)})
        cache.parent.mkdir(parents=True, exist_ok=True)
        order = sorted(known)
        np.savez(
            cache,
            hashes=np.asarray(order),
            vectors=np.stack([known[h] for h in order]),
            embedder=np.asarray(embedder_sha),
        )
    return np.stack([known[h] for h in hashes]).astype(np.float32)
