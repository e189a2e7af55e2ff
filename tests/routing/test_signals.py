"""Signals are computed from ParsedRequest fields and keyed by name."""

from __future__ import annotations

from extproc.routing.signals import SIGNAL_NAMES, compute_signals

from .conftest import body_request, chat


def test_plain_chat_has_quiet_signals() -> None:
    s = compute_signals(chat("hello there"))
    assert set(s) == set(SIGNAL_NAMES)
    assert s["agentic"] is False
    assert s["tools"] == 0
    assert s["reasoning_markers"] == 0
    assert s["max_tokens"] == 0
    assert s["messages"] == 1


def test_tools_and_tool_messages_make_agentic() -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    s = compute_signals(chat("weather in Paris?", tools=[tool, tool]))
    assert s["tools"] == 2
    assert s["agentic"] is True
    body = {
        "model": "auto",
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "calling"},
            {"role": "tool", "content": "result", "tool_call_id": "1"},
        ],
    }
    s = compute_signals(body_request(body))
    assert s["tool_messages"] == 1
    assert s["agentic"] is True


def test_long_conversation_is_agentic() -> None:
    msgs = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(13)
    ]
    s = compute_signals(body_request({"model": "auto", "messages": msgs}))
    assert s["messages"] == 13
    assert s["agentic"] is True


def test_reasoning_markers_context_and_output_length() -> None:
    text = "Think step by step and prove that the sum is even. Show your work."
    s = compute_signals(chat(text, max_tokens=2048))
    assert s["reasoning_markers"] == 3
    assert s["max_tokens"] == 2048
    assert s["prompt_tokens"] == len(text) // 4 + 4
    s = compute_signals(chat("```py\nprint(1)\n```\nwhy does this fail?"))
    assert s["code_blocks"] == 1
