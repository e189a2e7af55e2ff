"""Readers for files that say how well several models answered each prompt.

Used by ``routeiq eval`` and by training; never on the serving path. Four formats, each
read into the same :class:`LabelledRow` (prompt, per-model score, optional per-model
cost of the call, source and group):

* ``routellm``: RouteLLM's ``routellm/evals/mmlu/responses/*.csv``: ``prompt`` then one
  True/False (or 0/1) column per model. Source ``routellm``, group the file's stem.
* ``mmlu-pro``: ``mmlu_pro_correctness.csv``: ``question``, ``options`` (a JSON list),
  ``answer``, ``category``, ``src`` and one 0/1 column per model. The prompt is the
  question as MMLU-Pro's CoT evaluation shows it to the model, without the few-shot
  examples: ``Question:\\n<q>\\nOptions:\\nA. <opt>\\n...Answer: Let's think step by
  step.`` ("N/A" options dropped, as MMLU-Pro does). Group: ``src``.
* ``routerbench``: JSONL with ``prompt``, ``eval_name`` and, per model, its score and
  ``<model>|cost`` (dollars for that call). A null score means "not measured": the model
  is left out of that row. Group: ``eval_name``.
* ``jsonl``: plain ``{"prompt", "strong_score", "weak_score"}`` lines (optional
  ``strong_cost``, ``weak_cost``, ``group``); the models are named ``strong`` and ``weak``.

The format is detected from the file (CSV header or the first JSON line) unless given.
Every problem is a :class:`LabelledError` whose message is one line naming the file and,
where it applies, the line number.

:meth:`LabelledSet.pair` selects a strong and a weak model (``--strong``/``--weak``);
names match exactly, case-insensitively, by the part after the last ``/``, or as a
case-insensitive substring, each only when unique; an unknown name is an error listing
the available models.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

FORMATS = ("routellm", "mmlu-pro", "routerbench", "jsonl")
COST_SUFFIX = "|cost"
_MMLU_PRO_META = frozenset({"question_id", "category", "src", "question", "options", "answer"})
_ROUTERBENCH_META = frozenset({"sample_id", "eval_name", "split", "prompt"})
_CHOICES = "ABCDEFGHIJKLMNOP"
# Default (strong, weak) pairs, tried in order: GPT-4-1106 vs Mixtral-8x7B as RouteLLM and
# RouterBench name them, the strongest MMLU-Pro model vs Mixtral, the plain JSONL pair.
DEFAULT_PAIRS = (
    ("gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    ("gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat"),
    ("gemini-1.5-pro-002", "Mixtral-8x7B-Instruct-v0.1"),
    ("strong", "weak"),
)
Floats = npt.NDArray[np.float64]


class LabelledError(ValueError):
    """A labelled file cannot be used; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class LabelledRow:
    """One prompt: each model's score (0/1 or in [0, 1]) and, when known, its cost."""

    prompt: str
    scores: Mapping[str, float]
    costs: Mapping[str, float]
    source: str
    group: str


@dataclass(frozen=True, slots=True)
class StrongWeak:
    """Rows that have a score for both chosen models, as arrays (costs NaN when unknown)."""

    strong: str
    weak: str
    prompts: tuple[str, ...]
    strong_scores: Floats
    weak_scores: Floats
    strong_costs: Floats
    weak_costs: Floats
    groups: tuple[str, ...]
    sources: tuple[str, ...]
    skipped: int  # rows without a score for one of the two models


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """Every row read from one or more labelled files."""

    rows: tuple[LabelledRow, ...]
    formats: tuple[str, ...]

    @property
    def models(self) -> tuple[str, ...]:
        """Models scored in at least one row, in the order first seen."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(row.scores))
        return tuple(seen)

    def default_pair(self) -> tuple[str, str]:
        """The first of :data:`DEFAULT_PAIRS` present, else the only two models."""
        models = set(self.models)
        for strong, weak in DEFAULT_PAIRS:
            if strong in models and weak in models:
                return strong, weak
        if len(models) == 2:
            a, b = self.models
            return (a, b) if self._mean(a) >= self._mean(b) else (b, a)
        raise LabelledError(
            f"name the models with --strong and --weak; available: {', '.join(self.models)}"
        )

    def _mean(self, model: str) -> float:
        values = [r.scores[model] for r in self.rows if model in r.scores]
        return float(np.mean(values)) if values else 0.0

    def pair(self, strong: str | None = None, weak: str | None = None) -> StrongWeak:
        """The rows scored for both ``strong`` and ``weak`` (defaults: :meth:`default_pair`)."""
        if strong is None or weak is None:
            d_strong, d_weak = self.default_pair()
            strong, weak = strong or d_strong, weak or d_weak
        strong = resolve_model(strong, self.models, "--strong")
        weak = resolve_model(weak, self.models, "--weak")
        if strong == weak:
            raise LabelledError(f"--strong and --weak are the same model: {strong}")
        rows = [r for r in self.rows if strong in r.scores and weak in r.scores]
        if not rows:
            raise LabelledError(f"no row has scores for both {strong} and {weak}")

        def column(values: Sequence[Mapping[str, float]], model: str) -> Floats:
            return np.array([v.get(model, np.nan) for v in values], dtype=np.float64)

        scores = [r.scores for r in rows]
        costs = [r.costs for r in rows]
        return StrongWeak(
            strong=strong,
            weak=weak,
            prompts=tuple(r.prompt for r in rows),
            strong_scores=column(scores, strong),
            weak_scores=column(scores, weak),
            strong_costs=column(costs, strong),
            weak_costs=column(costs, weak),
            groups=tuple(r.group for r in rows),
            sources=tuple(r.source for r in rows),
            skipped=len(self.rows) - len(rows),
        )


def resolve_model(name: str, available: Sequence[str], option: str) -> str:
    """``name`` as spelled in the data: exact, else the unique case-insensitive match of the
    whole name, of the part after the last ``/``, or of a substring (in that order)."""
    if name in available:
        return name
    lowered = name.lower()
    for candidates in (
        [m for m in available if m.lower() == lowered],
        [m for m in available if m.rsplit("/", 1)[-1].lower() == lowered.rsplit("/", 1)[-1]],
        [m for m in available if lowered in m.lower()],
    ):
        if len(candidates) == 1:
            return candidates[0]
    raise LabelledError(f"unknown {option} model '{name}'; available: {', '.join(available)}")


def load_labelled(paths: Sequence[Path], fmt: str | None = None) -> LabelledSet:
    """Read every file (format detected per file unless ``fmt``); raises LabelledError."""
    if fmt is not None and fmt not in FORMATS:
        raise LabelledError(f"unknown format '{fmt}'; known: {', '.join(FORMATS)}")
    rows: list[LabelledRow] = []
    formats: list[str] = []
    for path in paths:
        file_fmt = fmt or detect_format(path)
        formats.append(file_fmt)
        rows.extend(_READERS[file_fmt](path))
    if not rows:
        raise LabelledError(f"no labelled rows in {', '.join(str(p) for p in paths)}")
    return LabelledSet(tuple(rows), tuple(formats))


def detect_format(path: Path) -> str:
    """``routellm``/``mmlu-pro`` from a CSV header, ``routerbench``/``jsonl`` from line 1."""
    try:
        with path.open(newline="") as fh:
            first = fh.readline()
    except OSError as exc:
        raise LabelledError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise LabelledError(f"{path}: not a text file") from None
    if first.lstrip().startswith("{"):
        doc = _json_line(path, 1, first)
        if "strong_score" in doc and "weak_score" in doc:
            return "jsonl"
        if "prompt" in doc and any(k.endswith(COST_SUFFIX) for k in doc):
            return "routerbench"
        raise LabelledError(
            f"{path}:1: a JSON line needs prompt + strong_score/weak_score "
            "or RouterBench's <model> and <model>|cost keys"
        )
    header = next(csv.reader([first]), [])
    if {"question", "options"} <= set(header):
        return "mmlu-pro"
    if header[:1] == ["prompt"] and len(header) >= 3:
        return "routellm"
    raise LabelledError(
        f"{path}: cannot tell the format (known: {', '.join(FORMATS)}); "
        "a CSV needs a 'prompt' column then model columns, or MMLU-Pro's "
        "question/options"
    )


def _json_line(path: Path, n: int, raw: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LabelledError(f"{path}:{n}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise LabelledError(f"{path}:{n}: a line must be a JSON object")
    return doc


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with path.open() as fh:
            for n, raw in enumerate(fh, 1):
                if raw.strip():
                    yield n, _json_line(path, n, raw)
    except OSError as exc:
        raise LabelledError(f"cannot read {path}: {exc.strerror}") from None


def _csv_rows(path: Path, needed: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in needed if c not in (reader.fieldnames or ())]
            if missing:
                raise LabelledError(f"{path}: missing column(s) {', '.join(missing)}")
            for row in reader:
                yield reader.line_num, row
    except OSError as exc:
        raise LabelledError(f"cannot read {path}: {exc.strerror}") from None
    except csv.Error as exc:
        raise LabelledError(f"{path}: not a valid CSV ({exc})") from None


def _score(path: Path, n: int, column: str, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return 1.0 if text == "true" else 0.0
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise LabelledError(f"{path}:{n}: '{column}' is not a score: {value!r}") from None
    if not 0.0 <= score <= 1.0:
        raise LabelledError(f"{path}:{n}: '{column}' = {score} is outside [0, 1]")
    return score


def _cost(path: Path, n: int, column: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise LabelledError(f"{path}:{n}: '{column}' is not a cost in dollars: {value!r}")


def _prompt(path: Path, n: int, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LabelledError(f"{path}:{n}: the prompt is missing or not text")
    return value


def _row(
    prompt: str, scores: dict[str, float], costs: dict[str, float], source: str, group: str
) -> LabelledRow:
    return LabelledRow(prompt, MappingProxyType(scores), MappingProxyType(costs), source, group)


def read_routellm(path: Path) -> Iterator[LabelledRow]:
    """RouteLLM responses CSV: ``prompt`` then one correctness column per model."""
    for n, row in _csv_rows(path, ("prompt",)):
        models = [k for k in row if k != "prompt" and k is not None]
        scores = {m: _score(path, n, m, row[m]) for m in models if row[m] not in (None, "")}
        yield _row(_prompt(path, n, row["prompt"]), scores, {}, "routellm", path.stem)


def mmlu_pro_prompt(question: str, options: Sequence[str]) -> str:
    """The question as MMLU-Pro's CoT evaluation presents it (few-shot examples left out)."""
    kept = [o for o in options if o != "N/A"]
    lines = [f"{_CHOICES[i]}. {opt}" for i, opt in enumerate(kept)]
    return (
        "Question:\n"
        + question
        + "\nOptions:\n"
        + "".join(line + "\n" for line in lines)
        + ("Answer: Let's think step by step.")
    )


def read_mmlu_pro(path: Path) -> Iterator[LabelledRow]:
    """MMLU-Pro correctness CSV (see the module doc for the prompt text)."""
    for n, row in _csv_rows(path, ("question", "options")):
        try:
            options = json.loads(row["options"])
        except json.JSONDecodeError:
            raise LabelledError(f"{path}:{n}: 'options' is not a JSON list") from None
        if not isinstance(options, list) or len(options) > len(_CHOICES):
            raise LabelledError(f"{path}:{n}: 'options' must be a list of at most 16 options")
        models = [k for k in row if k not in _MMLU_PRO_META and k is not None]
        scores = {m: _score(path, n, m, row[m]) for m in models if row[m] not in (None, "")}
        prompt = mmlu_pro_prompt(_prompt(path, n, row["question"]), [str(o) for o in options])
        yield _row(prompt, scores, {}, "mmlu-pro", row.get("src") or row.get("category") or "")


def read_routerbench(path: Path) -> Iterator[LabelledRow]:
    """RouterBench JSONL: per model its score and ``<model>|cost`` (null: not measured)."""
    for n, doc in _json_lines(path):
        scores: dict[str, float] = {}
        costs: dict[str, float] = {}
        for key, value in doc.items():
            if key in _ROUTERBENCH_META or value is None:
                continue
            if key.endswith(COST_SUFFIX):
                costs[key[: -len(COST_SUFFIX)]] = _cost(path, n, key, value)
            else:
                scores[key] = _score(path, n, key, value)
        group = str(doc.get("eval_name") or path.stem)
        yield _row(_prompt(path, n, doc.get("prompt")), scores, costs, "routerbench", group)


def read_plain(path: Path) -> Iterator[LabelledRow]:
    """Plain JSONL ``{"prompt", "strong_score", "weak_score"}`` (+ optional costs, group)."""
    for n, doc in _json_lines(path):
        prompt = _prompt(path, n, doc.get("prompt"))
        scores: dict[str, float] = {}
        costs: dict[str, float] = {}
        for model in ("strong", "weak"):
            if doc.get(f"{model}_score") is None:
                raise LabelledError(f"{path}:{n}: missing '{model}_score'")
            scores[model] = _score(path, n, f"{model}_score", doc[f"{model}_score"])
            if doc.get(f"{model}_cost") is not None:
                costs[model] = _cost(path, n, f"{model}_cost", doc[f"{model}_cost"])
        group = str(doc.get("group") or doc.get("source") or path.stem)
        yield _row(prompt, scores, costs, path.stem, group)


_READERS = {
    "routellm": read_routellm,
    "mmlu-pro": read_mmlu_pro,
    "routerbench": read_routerbench,
    "jsonl": read_plain,
}
