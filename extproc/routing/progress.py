"""A one-line progress counter for long CLI jobs (train, eval, score, replay).

It writes ``\\r<label>: done/total (pct%) rate/s`` to a stream (stderr) at most every
``interval_s`` and a final line on ``close``, but only when that stream is a terminal:
redirected to a file or a pipe (CI, scripts), it prints nothing, so a job's stderr holds
only its errors. No dependency: the CLI must not pull a progress-bar package.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """Count items done out of ``total``; silent unless ``stream`` is a TTY."""

    def __init__(
        self, label: str, total: int, stream: TextIO | None = None, interval_s: float = 0.2
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self._stream, "isatty", lambda: False)()) and total > 0
        self._label = label
        self._total = total
        self._done = 0
        self._interval = interval_s
        self._start = time.monotonic()
        self._last = 0.0

    @property
    def done(self) -> int:
        return self._done

    def advance(self, n: int = 1) -> None:
        """``n`` more items done; redraws the line when ``interval_s`` has passed."""
        self._done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self._interval or self._done >= self._total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        pct = 100.0 * self._done / self._total
        self._stream.write(
            f"\r{self._label}: {self._done}/{self._total} ({pct:.0f}%) {self._done / elapsed:.0f}/s"
        )
        self._stream.flush()

    def close(self) -> None:
        """End the line (only when something was drawn)."""
        if self.enabled and self._last:
            self._stream.write("\n")
            self._stream.flush()
            self._last = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
