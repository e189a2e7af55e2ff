"""The question a few-shot prompt asks, found in bounded time.

Evaluation harnesses and many applications send worked examples before the real question
("Question: ... Answer: 72", then "Question: ... Answer:"). Embedding the head of such a
prompt embeds the examples: every prompt built on the same examples gets the same
embedding, the same category and the same need. :func:`asked_question` returns the last
blank-line separated block instead, when the prompt looks like one: that block ends with an
answer cue (``Answer:``, ``A:``, ``Output:``...) left open, and an earlier block gives the
same cue an answer. Anything else is returned unchanged.

Only the last ``window`` characters are looked at (two of them for the examples), so the
cost is bounded whatever the prompt's size: this runs on the event loop.
"""

from __future__ import annotations

CUES: tuple[str, ...] = ("Answer:", "A:", "Output:", "Solution:", "Label:", "Response:")


def _open_cue(block: str) -> str | None:
    """The answer cue ``block`` ends with (nothing after it), if any."""
    end = block.rstrip()
    for cue in CUES:
        if end.endswith(cue) and (len(end) == len(cue) or not end[-len(cue) - 1].isalnum()):
            return cue
    return None


def _answered(examples: str, cue: str) -> bool:
    """True when ``examples`` holds ``cue`` followed by an answer."""
    start = examples.find(cue)
    while start >= 0:
        rest = examples[start + len(cue) : start + len(cue) + 200].lstrip(" \t")
        if rest.startswith("\n"):  # the answer may start on the next line, not after a gap
            rest = rest[1:].lstrip(" \t")
        if rest and not rest.startswith("\n"):
            return True
        start = examples.find(cue, start + len(cue))
    return False


def asked_question(text: str, window: int) -> str:
    """The last block of a few-shot ``text`` (the question asked), else ``text`` itself."""
    tail = text[-window:]
    cut = tail.rstrip().rfind("\n\n")
    if cut < 0:
        return text
    block = tail[cut:].strip()
    cue = _open_cue(block)
    if cue is None:
        return text
    before = text[max(0, len(text) - len(tail) + cut - window) : len(text) - len(tail) + cut]
    return block if _answered(before, cue) else text
