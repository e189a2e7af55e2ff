"""Stream decision-log lines from files: plain or gzip, rotated files oldest first.

The writer rotates ``path`` into ``path.1`` ... ``path.N`` (``path.N`` oldest); an
operator may have compressed some (``path.3.gz``). ``ordered`` sorts the files it is
given so that lines come roughly in time order (the report does not depend on it:
every line carries its own time), and ``lines`` yields each line's bytes without
holding more than a read buffer.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

_ROTATED = re.compile(r"^(?P<base>.*?)(?:\.(?P<n>\d+))?(?:\.gz)?$")
_GZIP_MAGIC = b"\x1f\x8b"


def rotation_key(path: Path) -> tuple[str, int]:
    """Sort key: by base name, then the highest rotation index first (the oldest)."""
    m = _ROTATED.match(path.name)
    assert m is not None  # the pattern matches any name
    n = int(m.group("n")) if m.group("n") else 0
    return (str(path.parent / m.group("base")), -n)


def ordered(paths: Iterable[Path]) -> list[Path]:
    """``paths`` deduplicated, rotated files of one log oldest first."""
    return sorted(set(paths), key=rotation_key)


def lines(paths: Iterable[Path]) -> Iterator[bytes]:
    """Every non-empty line of every file, in the order given; gzip is recognised by
    its magic bytes, not by the file name."""
    for path in paths:
        with open(path, "rb") as raw:
            gz = raw.peek(2)[:2] == _GZIP_MAGIC
            stream: Iterable[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
            for line in stream:
                if len(line) > 1:
                    yield line
