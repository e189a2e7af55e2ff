"""The semantic threshold on the paraphrase set written for it (real embedding model)."""

from __future__ import annotations

from pathlib import Path

from extproc.cache.evaluate import load_set, threshold_table
from extproc.cache.spec import SemanticCacheSpec
from extproc.routing.embedder import load_embedder
from extproc.routing.router import default_models_dir

SET = Path(__file__).with_name("paraphrases.jsonl")


def test_default_threshold_serves_mostly_right_answers() -> None:
    rows = load_set(SET)
    assert len(rows) == 50 and all(r["paraphrases"] and r["different"] for r in rows)
    embedder = load_embedder(default_models_dir() / "embedder" / "manifest.json", threads=1)
    default = SemanticCacheSpec().threshold
    low, chosen, high = threshold_table(embedder, rows, [0.80, default, 0.99])
    assert chosen.precision >= 0.9 and chosen.recall >= 0.45
    assert low.wrong > chosen.wrong  # a lower bar serves more wrong answers...
    assert high.recall < chosen.recall  # ...a higher one answers fewer repeats
    assert chosen.hits == chosen.right + chosen.wrong
