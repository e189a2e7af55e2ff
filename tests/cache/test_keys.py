"""Exact and frame keys: what normalisation merges and what it keeps apart."""

from __future__ import annotations

from typing import Any

from extproc.cache.keys import literals, parameters, request_keys
from tests.cache.conftest import chat

EMBEDDER = "embedder:model_int8.onnx"


def keys(text: str = "What is the capital of France?", **body: Any) -> tuple[str, str | None]:
    k = request_keys(chat(text, **body), "model:gpt-4o-mini", "", EMBEDDER)
    return k.exact, k.frame


def test_whitespace_line_ends_text_parts_and_integral_floats_do_not_matter() -> None:
    base = keys("Explain TCP.\nBriefly.")
    assert keys("  Explain TCP.\r\nBriefly.  ") == base
    parts = [{"type": "text", "text": "Explain TCP.\nBriefly."}]
    assert keys(messages=[{"role": "user", "content": parts}]) == base
    assert keys("Explain TCP.\nBriefly.", temperature=0.0) == base
    assert keys("Explain TCP.\nBriefly.", n=1, stream=True, user="u1") == base
    assert keys("Explain TCP.\nBriefly.", metadata={"a": "b"}, store=True) == base


def test_max_tokens_synonyms_are_one_parameter() -> None:
    assert keys(max_tokens=50) == keys(max_completion_tokens=50)
    assert parameters({"max_completion_tokens": 5, "seed": None}) == {"max_tokens": 5}


def test_answer_changing_parameters_keep_requests_apart() -> None:
    base = keys()
    variants = [
        {"temperature": 0.2},
        {"top_p": 0.5},
        {"max_tokens": 10},
        {"seed": 7},
        {"stop": ["\n"]},
        {"response_format": {"type": "json_object"}},
        {"presence_penalty": 1},
        {"a_parameter_nobody_knows_yet": True},
    ]
    exact = {base[0]} | {keys(**v)[0] for v in variants}
    assert len(exact) == len(variants) + 1
    assert all(keys(**v)[1] != base[1] for v in variants)  # frames too


def test_model_namespace_and_case_keep_requests_apart() -> None:
    request = chat("What is the capital of France?")
    one = request_keys(request, "model:gpt-4o-mini", "", EMBEDDER)
    assert request_keys(request, "profile:auto", "", EMBEDDER).exact != one.exact
    assert request_keys(request, "model:gpt-4o-mini", "v2", EMBEDDER).exact != one.exact
    assert keys("what is the capital of france?")[0] != one.exact


def test_frame_is_shared_by_different_last_turns_but_not_by_different_contexts() -> None:
    assert keys("Capital of France?")[1] == keys("Which city is France's capital?")[1]
    history = [
        {"role": "system", "content": "Answer in German."},
        {"role": "user", "content": "Capital of France?"},
    ]
    other = [{"role": "system", "content": "Answer in French."}, history[1]]
    assert keys(messages=history)[1] != keys(messages=other)[1]
    assert keys(messages=history)[1] != keys("Capital of France?")[1]


def test_literals_split_frames() -> None:
    assert literals("Convert 100 F to C") == [["100"], False]
    assert literals("who was the SECOND person") == [["#second"], False]
    assert literals("a year that is not a leap year") == [[], True]
    assert literals("I don't know") == [[], True]
    assert keys("Convert 100 F to C")[1] != keys("Convert 50 F to C")[1]
    assert keys("the first person on the moon")[1] != keys("the second person on the moon")[1]
    assert keys("days in a leap year")[1] != keys("days in a year that is not a leap year")[1]


def test_no_embedder_no_frame() -> None:
    assert request_keys(chat(), "model:gpt-4o-mini", "", None).frame is None
