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
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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
    """A bounded set of worker threads with a per-job wait budget; one per server process.

    The hop is kept to what it must cost: the job goes on a queue, a worker runs it and
    posts the outcome back with one ``call_soon_threadsafe`` (one loop wake-up), and the
    budget is one timer on the loop. (``run_in_executor`` with ``asyncio.timeout`` and
    ``shield`` chains three futures and a second callback per job: about twice the CPU
    per hop.) A job whose caller already gave up (timed out or cancelled) before a worker
    picked it up is not run at all.
    """

    def __init__(self, threads: int, timeout_s: float, max_pending: int) -> None:
        self._threads = max(1, threads)
        self._timeout_s = timeout_s
        self._max_pending = max(1, max_pending)
        self._pending = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._started = False
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs queued or running now (jobs whose caller gave up included)."""
        return self._pending

    async def run(self, job: Callable[[], T]) -> T:
        with self._lock:
            if self._closed:
                raise RuntimeError("the analysis pool is closed")
            if self._pending >= self._max_pending:
                raise OffloadBusy(f"{self._pending} offloaded jobs pending")
            self._pending += 1
            if not self._started:
                self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        timer = loop.call_later(self._timeout_s, _expire, future, self._timeout_s)
        try:
            return await future
        finally:
            timer.cancel()

    def _start(self) -> None:
        self._started = True
        for i in range(self._threads):
            name = f"routeiq-offload_{i}"
            # Daemon: a stuck job must not keep the process from exiting.
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            self._run_one(*item)
            del item  # nothing of a job stays referenced while the thread waits

    def _run_one(
        self, job: Callable[[], Any], future: asyncio.Future[Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        if future.done():  # the caller gave up while the job was queued
            self._release()
            return
        error: BaseException | None = None
        outcome: Any = None
        try:
            outcome = job()
        except BaseException as exc:  # handed to the caller, whatever it is
            error = exc
        finally:
            self._release()
        _post(loop, _settle, future, outcome, error)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def close(self) -> None:
        """Stop accepting jobs and drop queued ones; running ones finish on their threads."""
        with self._lock:
            self._closed = True
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._release()
                _post(item[2], item[1].cancel)
        for _ in range(self._threads):
            self._queue.put(None)


_Item = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


def _post(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: Any) -> None:
    """``callback(*args)`` on ``loop``'s thread; nothing when that loop is already closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback, *args)


def _settle(future: asyncio.Future[Any], outcome: Any, error: BaseException | None) -> None:
    if future.done():  # timed out or cancelled meanwhile
        return
    if error is None:
        future.set_result(outcome)
    else:
        future.set_exception(error)


def _expire(future: asyncio.Future[Any], timeout_s: float) -> None:
    if not future.done():
        future.set_exception(OffloadTimeout(f"job exceeded {timeout_s * 1000:.0f} ms"))
