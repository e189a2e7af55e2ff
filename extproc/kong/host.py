"""Where the Kong plugin's async work runs: one event loop thread and one Runtime per config.

kong-pdk calls plugin handlers synchronously, in a fresh OS thread per event (default
mode) or in a gevent greenlet (``-g``). ``Runtime.decide`` is a coroutine, and the
services behind it (Redis pools, remote OPA clients) must live on ONE event loop for
the life of the process: a loop per call would rebuild connections every request and
cannot share them. So a ``RuntimeHost`` owns a daemon thread running a persistent
asyncio loop, and handlers submit coroutines to it with ``run_coroutine_threadsafe``.

Waiting for the result depends on the caller:

- an OS thread blocks on the future (other handler threads keep running);
- a gevent greenlet must not block its OS thread (that would stall every other
  request of the plugin server), so the loop thread wakes it through gevent's
  thread-safe ``loop.run_callback_threadsafe`` and the greenlet yields meanwhile.

Kong starts one plugin instance per plugin configuration *per nginx worker*, all in
the same plugin-server process. Runtimes are therefore shared per config path, so
that budgets, affinity and health counted in memory are not split between workers
and models are loaded once. The host is created by the entry module (one per
process) and handed to each plugin instance explicitly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from extproc.config.settings import Settings
from extproc.config.watcher import ConfigWatcher, watch_runtime
from extproc.decision import Decision
from extproc.runtime import Runtime

T = TypeVar("T")

PENDING_TTL_S = 600.0
PENDING_MAX = 100_000


class DecideTimeout(Exception):
    """A coroutine submitted to the host did not finish within its deadline."""


def _in_gevent_greenlet() -> bool:
    """Whether the caller is a gevent greenlet (kong-pdk ``-g`` mode), not a plain thread."""
    gevent = sys.modules.get("gevent")
    if gevent is None:
        return False
    return isinstance(gevent.getcurrent(), gevent.Greenlet)


@dataclass(frozen=True, slots=True)
class _Pending:
    decision: Decision
    runtime: Runtime
    buffered: bool
    at: float


class PendingDecisions:
    """Decisions waiting for their log phase; bounded in size and age."""

    def __init__(self, ttl_s: float = PENDING_TTL_S, max_entries: int = PENDING_MAX) -> None:
        self._items: OrderedDict[str, _Pending] = OrderedDict()
        self._lock = threading.Lock()
        self.ttl_s = ttl_s
        self.max_entries = max_entries

    def put(self, decision: Decision, runtime: Runtime, buffered: bool) -> None:
        now = time.monotonic()
        with self._lock:
            self._items[decision.id] = _Pending(decision, runtime, buffered, now)
            while self._items:
                oldest = next(iter(self._items.values()))
                if len(self._items) <= self.max_entries and now - oldest.at < self.ttl_s:
                    break
                self._items.popitem(last=False)

    def pop(self, decision_id: str) -> _Pending | None:
        with self._lock:
            return self._items.pop(decision_id, None)

    def __len__(self) -> int:
        return len(self._items)


class RuntimeHost:
    """One asyncio loop thread and the Runtimes of one plugin-server process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runtimes: dict[Path, Runtime] = {}
        self._watchers: list[ConfigWatcher] = []
        self.pending = PendingDecisions()

    # -- the loop ---------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The persistent loop, started on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                new = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(new)
                    new.call_soon(ready.set)
                    new.run_forever()

                thread = threading.Thread(target=run, name="routeiq-loop", daemon=True)
                thread.start()
                ready.wait()
                self._thread, self._loop = thread, new
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and return its result; ``DecideTimeout`` past ``timeout``.

        Exceptions raised by the coroutine propagate. On timeout the coroutine is
        cancelled so that it does not keep consuming the loop.
        """
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            if _in_gevent_greenlet():
                return self._wait_gevent(future, timeout)
            return future.result(timeout)
        except (TimeoutError, concurrent.futures.TimeoutError):
            future.cancel()
            raise DecideTimeout(f"no result within {timeout} s") from None

    @staticmethod
    def _wait_gevent(future: concurrent.futures.Future[T], timeout: float | None) -> T:
        import gevent
        from gevent.hub import Waiter

        hub = gevent.get_hub()
        waiter: Waiter = Waiter(hub)
        # Called in the loop thread; switching from there would be illegal, so the
        # wake-up is queued on the hub's own loop, which is safe from any thread.
        future.add_done_callback(lambda _: hub.loop.run_callback_threadsafe(waiter.switch, None))
        with gevent.Timeout(timeout, TimeoutError):
            waiter.get()
        return future.result(0)

    # -- runtimes ---------------------------------------------------------------------

    def runtime(self, config_path: str | None) -> Runtime:
        """The Runtime for ``config_path`` (``ROUTEIQ_CONFIG_PATH`` when None), built once.

        Raises ``ConfigError`` when the config cannot be loaded; the next call tries
        again, so fixing the file recovers without restarting the plugin server.
        The Runtime is built ON the loop thread, the thread that will run all its
        work: native engines (regorus) must stay on the thread that made them, and
        async clients belong to that loop. Builds are serialised by the loop itself,
        so no lock is held while a greenlet waits (that could block gevent's hub).
        """
        settings = Settings(config_path=Path(config_path)) if config_path else Settings()
        key = settings.config_path.resolve()
        runtime = self._runtimes.get(key)
        if runtime is not None:
            return runtime
        return self.run(self._build(key, settings), None)

    async def _build(self, key: Path, settings: Settings) -> Runtime:
        runtime = self._runtimes.get(key)
        if runtime is None:
            runtime = self._runtimes[key] = Runtime.create(settings)
            # Hot reload, as in the ext_proc server; snapshots are built on this loop
            # thread (regorus under gevent must not be built on another thread).
            watcher = watch_runtime(runtime, build_in_thread=False)
            if watcher is not None:
                self._watchers.append(watcher)
        return runtime

    def close(self, timeout: float = 5.0) -> None:
        """Close every Runtime on the loop, then stop the loop thread."""
        loop, thread = self._loop, self._thread
        runtimes, self._runtimes = list(self._runtimes.values()), {}
        if loop is None:
            for rt in runtimes:
                asyncio.run(rt.close())
            return
        for w in self._watchers:
            asyncio.run_coroutine_threadsafe(w.stop(), loop).result(timeout)
        self._watchers = []
        for rt in runtimes:
            asyncio.run_coroutine_threadsafe(rt.close(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        loop.close()
        self._loop = self._thread = None
