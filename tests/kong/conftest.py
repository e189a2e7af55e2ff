"""A real kong-python-pluginserver per mode, and a harness playing Kong against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kong.harness import Kong, PluginServer

CONFIG = Path(__file__).with_name("routeiq-kong.yaml")
POLICIES = Path(__file__).resolve().parents[2] / "policies"
KONG_UPSTREAMS = {"eco.upstream", "demo_local"}  # upstreams declared in Kong (see the YAML)


def plugin_conf(path: Path = CONFIG, **extra: Any) -> dict[str, Any]:
    """The plugin config as Kong sends it: every schema field, defaults filled in."""
    return {"config_path": str(path), "timeout_ms": 2000, "buffer_responses": True, **extra}


# threads + Lua-style returns: kong-pdk's defaults; gevent + Python-style: the other pair.
@pytest.fixture(scope="module", params=["threads", "gevent"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PluginServer]:
    gevent = request.param == "gevent"
    ps = PluginServer(tmp_path_factory.mktemp("kong"), gevent=gevent, lua_style=not gevent)
    with ps:
        yield ps


@pytest.fixture
def kong(server: PluginServer) -> Iterator[Kong]:
    k = Kong(server.socket_path, upstreams=set(KONG_UPSTREAMS))
    yield k
    k.close()


@pytest.fixture(scope="module")
def instance(server: PluginServer) -> int:
    """The plugin instance of the shared test config (one Runtime for the module)."""
    k = Kong(server.socket_path)
    try:
        return k.start_instance(plugin_conf())
    finally:
        k.close()


@pytest.fixture
def config_copy(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the test config with ``spec`` fields replaced: its own Runtime and state."""

    def make(**spec: Any) -> Path:
        doc = yaml.safe_load(CONFIG.read_text())
        doc["spec"].update(spec)
        doc["spec"]["policy"]["modules"] = [str(POLICIES)]
        doc["spec"]["policy"]["data"] = [str(POLICIES / "data")]
        path = tmp_path / f"routeiq-{len(list(tmp_path.glob('*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return make
