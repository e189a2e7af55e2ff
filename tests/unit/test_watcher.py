"""Hot reload: a change is built and swapped; a broken file keeps the last good config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from extproc.config.errors import ConfigError
from extproc.config.settings import Settings
from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.config.watcher import ConfigWatcher, fingerprint, watch_runtime
from extproc.runtime import Runtime

CONFIG = """
apiVersion: routeiq.dev/v1alpha1
kind: RoutingConfig
spec:
  backends:
    - {name: a, cluster: ca, models: [m1]}
  aliases: {x: m1}
"""


class Holder:
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def swap(self, new: Snapshot) -> None:
        self.snapshot = new


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "routeiq.yaml"
    path.write_text(CONFIG)
    return path


def polling(config: Path, holder: Holder, results: list[bool]) -> ConfigWatcher:
    """A watcher polling ``config`` every 50 ms for ``holder``, results into ``results``."""
    return ConfigWatcher(
        config,
        lambda: holder.snapshot,
        holder.swap,
        interval_s=0.05,
        debounce_s=0.05,
        on_result=results.append,
    )


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_change_is_swapped_and_broken_file_is_rejected(config: Path) -> None:
    holder = Holder(build_snapshot(config, with_router=False))
    results: list[bool] = []
    watcher = polling(config, holder, results)
    watcher.start()
    try:
        first = holder.snapshot
        config.write_text(CONFIG.replace("x: m1", "y: m1"))
        await wait_for(lambda: holder.snapshot is not first)
        assert "y" in holder.snapshot.models and "x" not in holder.snapshot.models
        good = holder.snapshot

        config.write_text(CONFIG.replace("cluster: ca", "cluster: 'bad cluster!'"))
        await wait_for(lambda: watcher.failures == 1)
        assert holder.snapshot is good  # the last good config keeps serving
        assert watcher.last_error is not None and "cluster" in watcher.last_error
        assert results == [True, False]

        config.write_text("spec: [unterminated")
        await wait_for(lambda: watcher.failures == 2)
        assert holder.snapshot is good
    finally:
        await watcher.stop()


async def test_configmap_style_symlink_swap_is_seen(tmp_path: Path) -> None:
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "routeiq.yaml").write_text(CONFIG)
    (tmp_path / "v2" / "routeiq.yaml").write_text(CONFIG.replace("x: m1", "z: m1"))
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "routeiq.yaml").symlink_to("..data/routeiq.yaml")
    path = tmp_path / "routeiq.yaml"
    before = fingerprint(path)
    (tmp_path / "..data_tmp").symlink_to("v2")
    (tmp_path / "..data_tmp").rename(tmp_path / "..data")  # atomic swap, as kubelet does
    assert fingerprint(path) != before


def _bomb(levels: int) -> str:
    """A "billion laughs": each anchor is ten aliases of the one before (10**levels)."""
    lines = ['l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


BAD_FILES: dict[str, bytes] = {
    "nested-flow": b"spec: " + b"[" * 5_000 + b"]" * 5_000 + b"\n",
    "nested-block": "".join(f"{' ' * i}k{i}:\n" for i in range(2_000)).encode(),
    "binary": bytes(range(256)) * 16,
    "huge": b"# padding\n" * 500_000,  # 5 MB of comments: valid YAML, too big to read
    "alias-bomb": f"apiVersion: routeiq.dev/v1alpha1\nkind: RoutingConfig\n{_bomb(9)}".encode(),
    "alias-cycle": b"spec: &s {backends: [*s]}\n",
}


async def test_any_file_content_is_rejected_and_a_later_good_file_loads(config: Path) -> None:
    """Each bad file: one rejection counted, the last good config keeps serving; the
    watcher is still alive afterwards and loads the next valid config."""
    holder = Holder(build_snapshot(config, with_router=False))
    results: list[bool] = []
    watcher = polling(config, holder, results)
    good = holder.snapshot
    watcher.start()
    try:
        for i, (name, content) in enumerate(BAD_FILES.items(), start=1):
            config.write_bytes(content)
            await wait_for(lambda i=i: watcher.failures == i, timeout=30)  # type: ignore[misc]
            assert holder.snapshot is good, name
            assert watcher.last_error is not None and "\n" not in watcher.last_error, name
        assert results == [False] * len(BAD_FILES)
        config.write_text(CONFIG.replace("x: m1", "w: m1"))
        await wait_for(lambda: holder.snapshot is not good, timeout=30)
        assert "w" in holder.snapshot.models and results[-1] is True
    finally:
        await watcher.stop()


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_build_snapshot_refuses_bad_files_with_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / "routeiq.yaml"
    path.write_bytes(BAD_FILES[name])
    with pytest.raises(ConfigError) as info:
        build_snapshot(path, with_router=False)
    assert "\n" not in str(info.value) and len(str(info.value)) < 500
    assert fingerprint(path) != "missing"  # the watcher notices it without raising


def test_policy_data_alias_bomb_is_a_config_error(tmp_path: Path) -> None:
    """A data document that expands to millions of nodes would be encoded in full for
    the Rego engine (and sent to OPA): refused at load time instead."""
    (tmp_path / "p.rego").write_text("package routeiq\nimport rego.v1\ndecision := true\n")
    (tmp_path / "data.yaml").write_text(_bomb(6))  # 1.2 million nodes once expanded
    path = tmp_path / "routeiq.yaml"
    path.write_text(CONFIG + "  policy: {engine: embedded, modules: [p.rego], data: [data.yaml]}\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        build_snapshot(path, with_router=False)


async def test_a_retired_snapshot_gives_its_heap_back(config: Path) -> None:
    """After a reload the old snapshot is closed once its streams had time to end, and
    the free heap goes back to the system (glibc's malloc_trim, off the loop): without
    it each reload left tens of MiB resident (benchmarks/reload_memory.py)."""
    holder = Holder(build_snapshot(config, with_router=False))
    watcher = ConfigWatcher(config, lambda: holder.snapshot, holder.swap, retire_after_s=0.05)
    first = holder.snapshot
    config.write_text(CONFIG.replace("x: m1", "y: m1"))
    assert await watcher.reload()
    assert holder.snapshot is not first and watcher.retired == 0
    await wait_for(lambda: watcher.heap_releases == 1)
    assert watcher.retired == 1


async def test_an_edit_during_the_first_build_is_not_missed(config: Path, tmp_path: Path) -> None:
    """The runtime fingerprints the config before building its first snapshot and the
    watcher starts from that: an edit that lands between the build and the watcher's
    start (seconds, while models load) is reloaded, not taken as the baseline."""
    settings = Settings(config_path=config, reload_interval_ms=50, reload_debounce_ms=50)
    runtime = Runtime.create(settings)
    try:
        assert runtime.config_seen == fingerprint(config)
        config.write_text(CONFIG.replace("x: m1", "y: m1"))  # after the build
        first = runtime.snapshot
        watcher = watch_runtime(runtime)  # as the server starts it
        assert watcher is not None
        try:
            await wait_for(lambda: runtime.snapshot is not first)
            assert "y" in runtime.snapshot.models
        finally:
            await watcher.stop()
    finally:
        await runtime.close()
