"""Run CPU-heavy per-request work (embedding, content scans) off the event loop, bounded.

An ext_proc server multiplexes every stream on one asyncio loop: a 15 ms embedding
inline would delay every other request by 15 ms. :class:`ThreadOffload` runs such work
on a small thread pool (onnxruntime and the regex engine release the GIL for the bulk
of their time) with two bounds, so that no request, however crafted, can hold the
loop or queue unbounded work:

* ``max_pending``: jobs queued or running at once; past it :class:`OffloadBusy` is
  raised at once and the caller degrades (routes without a classification).
* ``timeout_s``: how long a request waits for its job; past it :class:`OffloadTimeout`.
  The job itself cannot be interrupted, but it still counts against ``max_pending``
  until it ends, so a flood of slow jobs cannot pile up threads.

:class:`InlineOffload` runs the job in the caller's thread: for tools, tests and the
explain view, where there is no loop to protect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class OffloadBusy(Exception):
    """Too many offloaded jobs are pending; the request must not wait for a slot."""


class OffloadTimeout(Exception):
    """The job did not finish within the per-request budget."""


class Offload(Protocol):
    async def run(self, job: Callable[[], T]) -> T:
        """``job()``'s result; raises ``OffloadBusy`` or ``OffloadTimeout``."""
        ...

    def close(self) -> None:
        """Release the threads (jobs already running finish on their own)."""
        ...


class InlineOffload:
    """Runs the job in the calling thread, unbounded (no loop to protect)."""

    async def run(self, job: Callable[[], T]) -> T:
        return job()

    def close(self) -> None:
        return None


class ThreadOffload:
    """A bounded thread pool with a per-job wait budget; one per server process."""

    def __init__(self, threads: int, timeout_s: float, max_pending: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, threads), thread_name_prefix="routeiq-offload"
        )
        self._timeout_s = timeout_s
        self._max_pending = max(1, max_pending)
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Jobs queued or running now (jobs whose caller gave up included)."""
        return self._pending

    async def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._pending >= self._max_pending:
                raise OffloadBusy(f"{self._pending} offloaded jobs pending")
            self._pending += 1
        try:
            future = asyncio.get_running_loop().run_in_executor(self._pool, self._call, job)
        except BaseException:
            self._release()
            raise
        try:
            # Shielded: on timeout the caller stops waiting, but the job is not cancelled
            # (it may be running) and frees its slot itself when it ends.
            async with asyncio.timeout(self._timeout_s):
                return await asyncio.shield(future)
        except TimeoutError:
            raise OffloadTimeout(f"job exceeded {self._timeout_s * 1000:.0f} ms") from None

    def _call(self, job: Callable[[], T]) -> T:
        try:
            return job()
        finally:
            self._release()

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop accepting jobs; running ones finish on their own threads."""
        self._pool.shutdown(wait=False, cancel_futures=True)
