"""Hot reload: a change is built and swapped; a broken file keeps the last good config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from extproc.config.snapshot import Snapshot, build_snapshot
from extproc.config.watcher import ConfigWatcher, fingerprint

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


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_change_is_swapped_and_broken_file_is_rejected(config: Path) -> None:
    holder = Holder(build_snapshot(config, with_router=False))
    results: list[bool] = []
    watcher = ConfigWatcher(
        config,
        lambda: holder.snapshot,
        holder.swap,
        interval_s=0.05,
        debounce_s=0.05,
        on_result=results.append,
    )
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
