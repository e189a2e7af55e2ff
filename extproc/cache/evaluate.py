"""How a semantic threshold trades hits against wrong answers, on a paraphrase set.

A set is JSON lines ``{"question", "paraphrases": [...], "different": [...]}``: a
paraphrase asks the same thing (the question's answer is right for it), a "different"
question is close in wording but needs another answer. Every question is stored, as a
cache would hold it; each paraphrase and each different question is then looked up
against all of them, the way the cache does: only questions with the same literals
(``extproc.cache.keys.literals``: numbers, ordinals, negation) share a frame, and the
closest stored vector of the frame is the candidate. At a threshold, a lookup whose
best cosine reaches it is a hit; the hit is right only when a paraphrase found its
own question.

* precision: right hits / hits (the share of served answers that are right);
* recall: right hits / paraphrases (the share of repeats the cache answers);
* wrong: hits that serve another question's answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from extproc.cache.keys import literals
from extproc.routing.embedders import TextEmbedder


@dataclass(frozen=True, slots=True)
class ThresholdRow:
    threshold: float
    hits: int
    right: int
    wrong: int
    paraphrases: int
    lookups: int

    @property
    def precision(self) -> float:
        return self.right / self.hits if self.hits else 1.0

    @property
    def recall(self) -> float:
        return self.right / self.paraphrases if self.paraphrases else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "hits": self.hits,
            "right": self.right,
            "wrong": self.wrong,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
        }


def load_set(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def threshold_table(
    embedder: TextEmbedder, rows: Sequence[dict[str, Any]], thresholds: Sequence[float]
) -> list[ThresholdRow]:
    """The precision and recall of each threshold on ``rows`` (see the module)."""
    stored = embedder.embed_many([r["question"] for r in rows])
    queries: list[tuple[str, int, bool]] = []  # text, its question's row, paraphrase?
    for i, r in enumerate(rows):
        queries += [(q, i, True) for q in r["paraphrases"]]
        queries += [(q, i, False) for q in r["different"]]
    vectors = embedder.embed_many([q for q, _, _ in queries])
    scores = vectors @ stored.T
    same_frame = np.array(
        [[literals(q) == literals(r["question"]) for r in rows] for q, _, _ in queries]
    )
    scores = np.where(same_frame, scores, -1.0)
    best = np.argmax(scores, axis=1)
    best_score = scores[np.arange(len(queries)), best]
    paraphrases = sum(1 for _, _, same in queries if same)
    out = []
    for t in thresholds:
        hit = best_score >= t
        right = sum(
            1 for k, (_, row, same) in enumerate(queries) if hit[k] and same and int(best[k]) == row
        )
        hits = int(hit.sum())
        out.append(ThresholdRow(t, hits, right, hits - right, paraphrases, len(queries)))
    return out
