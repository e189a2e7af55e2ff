"""The fenced shell blocks of a Markdown doc, as a reader would copy them, and a runner.

Doc tests run the very commands a page shows. A block is ```` ```sh ```` (or ``bash``,
``python``); an HTML comment on the line before it, ``<!-- doc-test: skip (why) -->``,
marks a block no test can run here (it needs Kong itself, a cluster...); the reason
stays visible in the page's source. ``substitute`` rewrites what must differ on a test
machine (ports, install paths), as whole words, in one pass, and nothing else.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

_FENCE = re.compile(
    r"(?:^[ \t]*<!--\s*doc-test:\s*(?P<mark>[^>]*?)\s*-->[ \t]*\n)?"
    r"^(?P<indent>[ \t]*)```(?P<lang>sh|bash|python)[^\n]*\n(?P<code>.*?)^[ \t]*```[ \t]*$",
    re.M | re.S,
)


@dataclass(frozen=True, slots=True)
class Block:
    lang: str
    code: str
    skip: str | None  # why no test runs it, or None

    def substituted(self, mapping: Mapping[str, str]) -> str:
        return substitute(self.code, mapping)


def blocks(markdown: str, section: str | None = None) -> list[Block]:
    """The fenced blocks of ``markdown`` (only under the ``## section`` heading if given)."""
    if section is not None:
        start = markdown.index(f"## {section}")
        end = markdown.find("\n## ", start + 3)
        markdown = markdown[start : end if end != -1 else None]
    out = []
    for m in _FENCE.finditer(markdown):
        mark = m.group("mark")
        skip = mark.removeprefix("skip").strip(" ()") if mark and mark.startswith("skip") else None
        indent = len(m.group("indent"))  # a block inside a list item is indented
        code = "".join(line[indent:] for line in m.group("code").splitlines(keepends=True))
        out.append(Block(m.group("lang"), code, skip))
    return out


def substitute(text: str, mapping: Mapping[str, str]) -> str:
    """Replace each key of ``mapping`` where it stands as a whole word, in one pass."""
    if not mapping:
        return text
    keys = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.])(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\w)")
    return pattern.sub(lambda m: mapping[m.group(0)], text)


@dataclass
class Shell:
    """Runs blocks with bash in ``cwd``, each in its own process group; processes a block
    leaves in the background (``&``) are stopped, group by group, on ``close``."""

    cwd: Path
    env: Mapping[str, str] = field(default_factory=dict)
    groups: list[int] = field(default_factory=list)

    def run(self, code: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.groups.append(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop(proc.pid)
            out, err = proc.communicate()
            raise AssertionError(f"timed out after {timeout}s:\n{code}\n{out}\n{err}") from None
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def _stop(self, group: int) -> None:
        """SIGTERM the group, wait up to 10 s for it to go, then SIGKILL what is left."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                os.killpg(group, 0)  # raises ProcessLookupError once the group is gone
                time.sleep(0.1)
            os.killpg(group, signal.SIGKILL)

    def close(self) -> None:
        for group in reversed(self.groups):
            self._stop(group)


@contextlib.contextmanager
def shell(cwd: Path, env: Mapping[str, str] | None = None) -> Iterator[Shell]:
    sh = Shell(cwd, dict(env or {}))
    try:
        yield sh
    finally:
        sh.close()
