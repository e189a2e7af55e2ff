"""Few-shot prompts are embedded from the question they ask (``embedding.fewShot``).

The layouts below are written for these tests in the shapes evaluation harnesses use
(multiple choice with an answer line, GSM8K-style question/answer pairs, an instruction
block before each example), not copied from any dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from extproc.routing import build_router
from extproc.routing.few_shot import asked_question
from extproc.routing.router import embedding_text
from extproc.routing.spec import RoutingSpec

from .conftest import REPO, chat

CHOICE = (
    "Which tool measures {thing}?\nA) ruler\nB) scale\nC) clock\nD) thermometer\n"
    'Print only a single choice from "A" or "B" or "C" or "D". Answer:'
)


def multiple_choice(question: str) -> str:
    examples = [CHOICE.format(thing=t) + f"\n{a}" for t, a in (("mass", "B"), ("time", "C"))]
    return "\n\n".join([*examples, question])


def word_problems(question: str, shots: int = 8) -> str:
    worked = [
        f"Question: Mia has {i} pens and buys {i + 2} more. How many pens?\n"
        f"Answer: {i} + {i + 2} = {2 * i + 2}. #### {2 * i + 2}"
        for i in range(shots)
    ]
    return "\n\n".join([*worked, f"Question: {question}\nAnswer:"])


def test_the_question_of_each_layout() -> None:
    last = CHOICE.format(thing="heat")
    assert asked_question(multiple_choice(last), 2000) == last
    q = "Sam reads 12 pages a day for 9 days. How many pages?"
    assert asked_question(word_problems(q), 2000) == f"Question: {q}\nAnswer:"
    instruction = "Please answer with the letter of the correct answer."
    blocks = [instruction, "Tom beat Ana because _ trained more.\nA) Tom\nB) Ana\nAnswer:\nA"]
    asked = "Lee lent Kim a pen since _ had two.\nA) Lee\nB) Kim\nAnswer:"
    prompt = "\n\n".join([*blocks, instruction, asked])
    assert asked_question(prompt, 2000) == asked


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "Summarise this report.\n\nSales grew 4%.\n\nAnswer:",  # a cue, but no worked example
        "Q1 was strong.\n\nA: we shipped.\n\nNext steps for the MBA:",  # "MBA:" is no cue
        "Intro.\n\nAnswer:\n\nAnswer:",  # cues without answers
        "Question: one?\nAnswer: yes\n\nTell me more about it.",  # the last block asks nothing
    ],
)
def test_other_prompts_are_kept_whole(text: str) -> None:
    assert asked_question(text, 2000) == text


def test_a_huge_prompt_is_read_from_its_end_only() -> None:
    q = "What is 7 * 8?"
    huge = word_problems(q, shots=20_000)  # about 1.5 MB of worked examples
    assert len(huge) > 1_000_000
    assert asked_question(huge, 2000) == f"Question: {q}\nAnswer:"


@pytest.fixture(scope="module")
def specs() -> tuple[RoutingSpec, RoutingSpec]:
    question = RoutingSpec.model_validate({"costQuality": {}})
    whole = RoutingSpec.model_validate({"costQuality": {}, "embedding": {"fewShot": "whole"}})
    return question, whole


def test_prompts_sharing_examples_no_longer_share_a_need(
    specs: tuple[RoutingSpec, RoutingSpec],
) -> None:
    """Same eight worked examples, different questions: embedded whole, both get one
    vector (the head); embedded by their question, they are told apart."""
    easy = chat(word_problems("Ann has 2 apples and gets 1 more. How many apples?"))
    hard = chat(
        word_problems(
            "A tank fills at 3.5 litres a minute and leaks 0.8 litres a minute after the "
            "first 12 minutes; how long until 500 litres, to the second?"
        )
    )
    question, whole = specs
    router = build_router(question, REPO)
    heads = [router.embedder.embed(embedding_text(r, whole.embedding)) for r in (easy, hard)]
    assert np.allclose(heads[0], heads[1])  # the first 128 tokens are the examples
    asked = [router.embedder.embed(embedding_text(r, question.embedding)) for r in (easy, hard)]
    assert not np.allclose(asked[0], asked[1])
    needs = [router.classify(r).quality for r in (easy, hard)]
    assert needs[0] is not None and needs[1] is not None
    assert needs[0].need != needs[1].need
    assert (
        router.classify(easy).category
        == router.classify(chat("Ann has 2 apples and gets 1 more. How many apples?")).category
    )


def test_reference_prompts_are_cut_the_same_way(tmp_path: Path) -> None:
    """``referencePrompts`` calibrate on what is served: few-shot lines by their question."""
    import json

    ref = tmp_path / "ref.jsonl"
    ref.write_text(
        "".join(
            json.dumps({"prompt": word_problems(f"What is {i} + {i}?")}) + "\n" for i in range(25)
        )
    )
    spec = RoutingSpec.model_validate({"costQuality": {"referencePrompts": str(ref)}})
    router = build_router(spec, REPO)
    assert router.quality is not None
    assert len(set(router.quality.reference.round(6))) > 1  # one need per question, not one
