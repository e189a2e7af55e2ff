"""Readers for labelled routing data (training and evaluation only, never per request).

Formats understood:

* category JSONL/CSV: ``{"prompt" | "query" | "text", "category" | "label" | "task_name"}``;
  LLMRouter task names are mapped onto categories with ``categories.LLMROUTER_TASKS``
  unless ``raw_labels`` is set.
* strong/weak CSV (RouteLLM ``routellm/evals/*/responses``): ``prompt`` then one 0/1
  (or True/False) column per model; the caller names the strong and weak columns.
* LLMRouter dcrouter JSON: ``[{"question", "scores": {model: 0/1}}]``.

``holdout`` is a deterministic split on the sha256 of the prompt text, so identical prompts
never straddle train and test and every tool gets the same split without a seed file.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extproc.routing.categories import LLMROUTER_TASKS

_TEXT_KEYS = ("prompt", "query", "text", "question")
_LABEL_KEYS = ("category", "label", "task_name")


@dataclass(frozen=True, slots=True)
class Labelled:
    """Prompts with one category label each (``groups`` e.g. the source task)."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StrongWeak:
    """Prompts with whether the strong and the weak model answered correctly."""

    texts: tuple[str, ...]
    strong: tuple[float, ...]
    weak: tuple[float, ...]
    groups: tuple[str, ...]


def holdout(text: str, test_percent: int = 20) -> bool:
    """True when ``text`` belongs to the held-out split (stable across runs and tools)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100 < test_percent


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix == ".csv":
        with path.open(newline="") as fh:
            yield from csv.DictReader(fh)
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        yield from data if isinstance(data, list) else [data]
    else:
        with path.open() as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)


def _first(row: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if row.get(key) not in (None, ""):
            return row[key]
    return None


def read_labelled(paths: Sequence[Path], raw_labels: bool = False) -> Labelled:
    """Category-labelled prompts from JSONL/CSV files (see module doc for the keys)."""
    texts: list[str] = []
    labels: list[str] = []
    groups: list[str] = []
    for path in paths:
        for i, row in enumerate(_rows(path)):
            text, label = _first(row, _TEXT_KEYS), _first(row, _LABEL_KEYS)
            if not isinstance(text, str) or not isinstance(label, str):
                raise ValueError(f"{path}:{i + 1}: needs a prompt and a category label")
            texts.append(text)
            labels.append(label if raw_labels else LLMROUTER_TASKS.get(label, label))
            groups.append(str(row.get("task_name", label)))
    return Labelled(tuple(texts), tuple(labels), tuple(groups))


def _flag(value: Any) -> float:
    if isinstance(value, str):
        return 1.0 if value.strip().lower() in ("true", "1", "1.0") else 0.0
    return float(value)


def read_strong_weak(paths: Sequence[Path], strong: str, weak: str) -> StrongWeak:
    """Per-prompt correctness of two models from RouteLLM CSVs or the dcrouter JSON."""
    texts: list[str] = []
    s: list[float] = []
    w: list[float] = []
    groups: list[str] = []
    for path in paths:
        for i, row in enumerate(_rows(path)):
            nested = row.get("scores")
            scores: dict[str, Any] = nested if isinstance(nested, dict) else row
            text = _first(row, _TEXT_KEYS)
            if not isinstance(text, str) or strong not in scores or weak not in scores:
                raise ValueError(f"{path}:{i + 1}: needs a prompt and columns {strong}, {weak}")
            texts.append(text)
            s.append(_flag(scores[strong]))
            w.append(_flag(scores[weak]))
            groups.append(str(row.get("cluster_id", path.stem)))
    return StrongWeak(tuple(texts), tuple(s), tuple(w), tuple(groups))


def file_sha256(paths: Sequence[Path]) -> dict[str, str]:
    """sha256 of each data file, for the training manifest."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
