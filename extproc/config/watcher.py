"""Hot reload: watch the config and what it references; build, warm, then swap.

Polling a fingerprint (content of the YAML and of the policy files, size and mtime of
the model files) rather than inotify: a Kubernetes ConfigMap update swaps a ``..data``
symlink, which inotify watches on the file itself miss, and polling costs a few file
reads per interval. A change must stay unchanged for the debounce time before a
build starts (ConfigMap updates land as several file events). The YAML is parsed
only when its bytes change, with bounded size, depth and alias expansion.

A new snapshot is built off the event loop (or on it, for hosts that need that),
warmed on it (the embedded Rego engine builds one evaluator per thread), and swapped
in with one assignment. Streams in
flight keep the snapshot they pinned; the old one is closed after a grace delay. A
build that fails (whatever the file holds: invalid, binary, huge, nested thousands
deep, an alias bomb) keeps the last good snapshot serving, logs one line and counts
it (``on_result(False)``: the ``routeiq.config.reloads`` failure count); the watcher
itself never stops on an error, so a later valid file still loads, and ``stop()``
never raises into shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.config.errors import ConfigError
from extproc.config.safe_yaml import MAX_FILE_BYTES, load_yaml, one_line
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.heap import release_free_heap
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


def _referenced(raw: bytes, base: Path) -> tuple[list[str], Path | None]:
    """Paths the config names (policy modules and data, JWT keys) and its models dir.

    Any content is fine: what cannot be read names nothing (the build says why).
    """
    try:
        doc = load_yaml(raw, "config")
        spec = doc.get("spec", {}) if isinstance(doc, dict) else {}
        policy = spec.get("policy") or {}
        keys = ((spec.get("identity") or {}).get("jwt") or {}).get("publicKeys", [])
        entries = [*policy.get("modules", []), *policy.get("data", []), *keys]
        routing = RoutingSpec.model_validate(spec.get("routing") or {})
        return [e for e in entries if isinstance(e, str)], resolve_models_dir(routing, base)
    except (ConfigError, OSError, ValueError, AttributeError, TypeError):
        return [], None


class Fingerprint:
    """Computes ``fingerprint``; parses the YAML only when its bytes change.

    The referenced files are listed and re-read every call, but the config text is
    parsed once per version of it: a bad file left in place costs a bounded read and a hash per
    interval, not a parse.
    """

    def __init__(self) -> None:
        self._raw_digest: bytes | None = None
        self._refs: tuple[list[str], Path | None] = ([], None)

    def __call__(self, config_path: Path) -> str:
        try:
            return self._compute(config_path)
        except Exception as exc:  # never raise into the watcher: the build will say why
            return f"unreadable:{type(exc).__name__}"

    def _compute(self, config_path: Path) -> str:
        try:
            st = config_path.stat()
            with config_path.open("rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except OSError:
            return "missing"
        digest = hashlib.sha256(raw)
        digest.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
        raw_digest = hashlib.sha256(raw).digest()
        base = config_path.resolve().parent
        if raw_digest != self._raw_digest:
            self._raw_digest = raw_digest
            self._refs = ([], None) if len(raw) > MAX_FILE_BYTES else _referenced(raw, base)
        entries, models = self._refs
        for path in _files_under(base, entries):
            digest.update(str(path).encode())
            with contextlib.suppress(OSError):
                digest.update(path.read_bytes())
        if models is not None and models.is_dir():
            for path in sorted(models.rglob("*")):
                with contextlib.suppress(OSError):
                    if path.is_file():
                        st = path.stat()
                        digest.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
        return digest.hexdigest()


def fingerprint(config_path: Path) -> str:
    """A hash that changes when the config or anything it references changes.

    Any content (invalid YAML, binary, huge, nested too deep) still yields a
    fingerprint (of its bytes), so that a broken edit is noticed, attempted, rejected
    and counted like any other; it never raises.
    """
    return Fingerprint()(config_path)


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
        retire_after_s: float = RETIRE_AFTER_S,
        seen: str | None = None,
    ) -> None:
        """``seen``: the fingerprint taken before the serving snapshot was built. Without
        it the watcher takes one now, and an edit that landed while the first snapshot
        was being built (seconds, with models) would never be noticed."""
        self.config_path = config_path
        self.retire_after_s = retire_after_s
        self._current = current
        self._swap = swap
        self.interval_s = interval_s
        self.debounce_s = debounce_s
        self._on_result = on_result
        self._build_in_thread = build_in_thread
        self._log = log or logging.getLogger("routeiq.reload")
        self._fingerprint = Fingerprint()
        self._seen = seen if seen is not None else self._fingerprint(config_path)
        self._task: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self.retired = 0
        self.heap_releases = 0
        self.reloads = 0
        self.failures = 0
        self.last_error: str | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watcher")

    async def stop(self) -> None:
        """Stop watching; never raises (shutdown must go on to drain the server)."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the loop below never lets one out; belt and braces
            self._log.error("config watcher had stopped: %s", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self._check()
            except Exception as exc:  # a bug must not end hot reload for good
                self._rejected(f"{type(exc).__name__} in the config watcher")

    async def _check(self) -> None:
        now = await asyncio.to_thread(self._fingerprint, self.config_path)
        if now == self._seen:
            return
        await asyncio.sleep(self.debounce_s)  # let the rest of an update land
        settled = await asyncio.to_thread(self._fingerprint, self.config_path)
        if settled != now:
            return  # still changing: look again next round
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
        try:
            if callable(warm):
                warm()  # this thread (the event loop's) evaluates: build its evaluator now
        except Exception as exc:
            snapshot.close()
            return self._rejected(f"{type(exc).__name__} while warming the policy engine")
        old = self._current()
        self._swap(snapshot)
        self.reloads += 1
        self.last_error = None
        if self._on_result is not None:
            self._on_result(True)
        self._log.info("config reloaded: version %s -> %s", old.version, snapshot.version)
        if old is not snapshot:
            asyncio.get_running_loop().call_later(self.retire_after_s, self._retire, old)
        return True

    def _retire(self, old: Snapshot) -> None:
        """Close the old snapshot, then give the heap it held back (off the loop)."""
        old.close()
        self.retired += 1
        task = asyncio.get_running_loop().create_task(self._release_heap())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _release_heap(self) -> None:
        if await asyncio.to_thread(release_free_heap):
            self.heap_releases += 1

    def _rejected(self, why: str) -> bool:
        self.failures += 1
        self.last_error = why
        if self._on_result is not None:
            self._on_result(False)
        self._log.error(
            "config reload rejected, still serving version %s: %s",
            self._current().version,
            one_line(why, 1000),
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
        seen=runtime.config_seen,
    )
    watcher.start()
    return watcher
