"""Hot reload: watch the config and what it references; build, warm, then swap.

Polling a fingerprint (content of the YAML and of the policy files, size and mtime of
the model files) rather than inotify: a Kubernetes ConfigMap update swaps a ``..data``
symlink, which inotify watches on the file itself miss, and polling costs a few file
reads per interval. A change must stay unchanged for the debounce time before a
build starts (ConfigMap updates land as several file events).

A new snapshot is built off the event loop (or on it, for hosts that need that),
warmed on it (the embedded Rego engine builds one evaluator per thread), and swapped
in with one assignment. Streams in
flight keep the snapshot they pinned; the old one is closed after a grace delay. A
build that fails keeps the last good snapshot serving, logs why and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from extproc.config.errors import ConfigError
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.routing.router import resolve_models_dir
from extproc.routing.spec import RoutingSpec

if TYPE_CHECKING:
    from extproc.runtime import Runtime

# How long an old snapshot stays open for streams that pinned it.
RETIRE_AFTER_S = 30.0


def _files_under(base: Path, entries: list[str]) -> list[Path]:
    out: list[Path] = []
    for entry in entries:
        p = base / entry
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.exists():
            out.append(p)
    return out


def fingerprint(config_path: Path) -> str:
    """A hash that changes when the config or anything it references changes.

    Unreadable or invalid YAML still yields a fingerprint (of its bytes), so that a
    broken edit is noticed, attempted, rejected and counted like any other.
    """
    digest = hashlib.sha256()
    try:
        raw = config_path.read_bytes()
    except OSError:
        return "missing"
    digest.update(raw)
    try:
        doc = yaml.safe_load(raw)
        spec = doc.get("spec", {}) if isinstance(doc, dict) else {}
        policy = spec.get("policy") or {}
        base = config_path.resolve().parent
        keys = ((spec.get("identity") or {}).get("jwt") or {}).get("publicKeys", [])
        referenced = [*policy.get("modules", []), *policy.get("data", []), *keys]
        for f in _files_under(base, referenced):
            digest.update(str(f).encode())
            digest.update(f.read_bytes())
        routing = RoutingSpec.model_validate(spec.get("routing") or {})
        models = resolve_models_dir(routing, base)
        for f in sorted(models.rglob("*")) if models.is_dir() else []:
            if f.is_file():
                st = f.stat()
                digest.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    except (yaml.YAMLError, OSError, ValueError, AttributeError, TypeError):
        pass  # the build will say what is wrong
    return digest.hexdigest()


class ConfigWatcher:
    """Rebuilds the snapshot when the config changes and hands it to ``swap``."""

    def __init__(
        self,
        config_path: Path,
        current: Callable[[], Snapshot],
        swap: Callable[[Snapshot], None],
        *,
        interval_s: float = 1.0,
        debounce_s: float = 0.5,
        on_result: Callable[[bool], None] | None = None,
        log: logging.Logger | None = None,
        build_in_thread: bool = True,
    ) -> None:
        self.config_path = config_path
        self._current = current
        self._swap = swap
        self.interval_s = interval_s
        self.debounce_s = debounce_s
        self._on_result = on_result
        self._build_in_thread = build_in_thread
        self._log = log or logging.getLogger("routeiq.reload")
        self._seen = fingerprint(config_path)
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            now = await asyncio.to_thread(fingerprint, self.config_path)
            if now == self._seen:
                continue
            await asyncio.sleep(self.debounce_s)  # let the rest of an update land
            settled = await asyncio.to_thread(fingerprint, self.config_path)
            if settled != now:
                continue  # still changing: look again next round
            self._seen = settled
            await self.reload()

    async def reload(self) -> bool:
        """Build, warm and swap now; True on success. Never raises for a bad config."""
        try:
            if self._build_in_thread:
                snapshot = await asyncio.to_thread(build_snapshot, self.config_path)
            else:  # hosts whose native engines must be built on the serving thread (Kong)
                snapshot = build_snapshot(self.config_path)
        except ConfigError as exc:
            return self._rejected(str(exc))
        except Exception as exc:  # a bug in a builder must not kill the watcher
            self._log.exception("config reload crashed")
            return self._rejected(f"{type(exc).__name__} while building the snapshot")
        warm = getattr(snapshot.policy, "warm", None)
        if callable(warm):
            warm()  # this thread (the event loop's) evaluates: build its evaluator now
        old = self._current()
        self._swap(snapshot)
        self.reloads += 1
        self.last_error = None
        if self._on_result is not None:
            self._on_result(True)
        self._log.info("config reloaded: version %s -> %s", old.version, snapshot.version)
        if old is not snapshot:
            asyncio.get_running_loop().call_later(RETIRE_AFTER_S, old.close)
        return True

    def _rejected(self, why: str) -> bool:
        self.failures += 1
        self.last_error = why
        if self._on_result is not None:
            self._on_result(False)
        self._log.error(
            "config reload rejected, still serving version %s: %s", self._current().version, why
        )
        return False


def watch_runtime(runtime: Runtime, *, build_in_thread: bool = True) -> ConfigWatcher | None:
    """A started watcher that reloads ``runtime``'s config per its settings (None: off)."""
    settings = runtime.settings
    if not settings.reload_interval_ms:
        return None
    watcher = ConfigWatcher(
        settings.config_path,
        lambda: runtime.snapshot,
        runtime.swap,
        interval_s=settings.reload_interval_ms / 1000,
        debounce_s=settings.reload_debounce_ms / 1000,
        on_result=runtime.reloaded,
        log=runtime.log,
        build_in_thread=build_in_thread,
    )
    watcher.start()
    return watcher
