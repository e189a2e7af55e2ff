"""docs/kong.md's set-up, step by step, from a non-editable install, up to the real
plugin server answering a request; and the same install validating, explaining and
serving the demo config from a directory that is not a checkout.

The doc's blocks run as written, in a copy of the checkout, with ``/opt/routeiq`` moved
to a temporary directory. One substitution keeps CI time sane: ``pip install '.[kong]'``
becomes ``pip install --no-deps .`` (the same build of the same wheel, into the same
fresh venv), and the fresh venv finds the pinned dependencies, already installed in the
project venv, through a ``.pth`` line naming that venv's site-packages. A ``.pth`` line
adds the directory to ``sys.path`` without running the ``.pth`` files in it, so the
project's editable install does not leak in: ``extproc`` and ``routeiq_models`` are
imported from the fresh venv (asserted below). ``kong-python-pluginserver`` is the
console script pip would write for kong-pdk, pointed at the fresh venv's Python.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from extproc.demo.processes import ManagedProcess, free_port, wait_for_port
from tests.docs.blocks import Block, blocks, shell, substitute
from tests.kong.conftest import plugin_conf
from tests.kong.harness import REPO, Kong, PluginServer, Request

DOC = REPO / "docs" / "kong.md"
INSTALL = "/opt/routeiq/.venv/bin/pip install '.[kong]'"
CHECKOUT = ("pyproject.toml", "README.md", "extproc", "models", "routeiq_models", "kong")
CHECKOUT += ("config", "policies")


@dataclass(frozen=True)
class Installed:
    root: Path  # what the doc calls /opt/routeiq
    python: Path
    elsewhere: Path  # a working directory that is not a checkout

    @property
    def bin(self) -> Path:
        return self.python.parent


def _checkout(into: Path) -> Path:
    into.mkdir()
    for name in CHECKOUT:
        src = REPO / name
        if src.is_symlink() or src.is_file():
            shutil.copy2(src, into / name, follow_symlinks=False)
        else:
            ignore = shutil.ignore_patterns("__pycache__", "*_fp32*", "*.jsonl")
            shutil.copytree(src, into / name, symlinks=True, ignore=ignore)
    return into


def _doc_blocks() -> list[Block]:
    found = blocks(DOC.read_text(), "Set-up, step by step")
    assert len(found) == 4 and INSTALL in found[0].code, [b.code for b in found]
    return found


def _deps_through_pth(python: Path) -> None:
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "routeiq-test-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")


def _pluginserver_script(python: Path) -> None:
    script = Path(sys.executable).parent / "kong-python-pluginserver"
    lines = script.read_text().splitlines()
    target = python.parent / "kong-python-pluginserver"
    target.write_text("\n".join([f"#!{python}", *lines[1:]]) + "\n")
    target.chmod(0o755)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("kong-install")
    root, checkout = base / "opt-routeiq", _checkout(base / "checkout")
    paths = {"/opt/routeiq": str(root)}
    if shutil.which("python3.11") is None:
        paths["python3.11"] = sys.executable
    install, copy, check, started = _doc_blocks()
    assert started.skip and "kong start" in started.code  # Kong itself: played below
    with shell(checkout) as sh:
        lines = install.substituted(paths).replace(
            substitute(INSTALL, paths), f"{root}/.venv/bin/pip install -q --no-deps ."
        )
        first, rest = lines.split("\n", 1)
        assert sh.run(first).returncode == 0
        _deps_through_pth(root / ".venv" / "bin" / "python")
        out = sh.run(rest, timeout=600)
        assert out.returncode == 0, out.stderr
        _pluginserver_script(root / ".venv" / "bin" / "python")
        out = sh.run(copy.substituted(paths))
        assert out.returncode == 0, out.stdout + out.stderr
        assert "config/routeiq.yaml: OK" in out.stdout and "routing centroid" in out.stdout
        out = sh.run(check.substituted(paths))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)[0]["Name"] == "routeiq"
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    return Installed(root, root / ".venv" / "bin" / "python", elsewhere)


def test_the_install_is_the_wheel_not_the_checkout(installed: Installed) -> None:
    out = subprocess.run(
        [str(installed.python), "-c",
         "import extproc, routeiq_models; from extproc.routing.router import default_models_dir;"
         "print(extproc.__file__); print(default_models_dir())"],
        capture_output=True, text=True, check=True, cwd=installed.elsewhere,
    ).stdout.split()  # fmt: skip
    venv = str(installed.root / ".venv")
    assert out[0].startswith(venv) and out[1].startswith(venv), out
    assert out[1].endswith("routeiq_models")
    assert (Path(out[1]) / "embedder" / "model_int8.onnx").is_file()
    static = Path(out[1]) / "static"  # the static set ships too (package data, one level down)
    for name in ("embedder/vectors.npy", "centroid/weights.npz", "quality/weights.npz"):
        assert (static / name).is_file(), name


@pytest.fixture
def plugin_server(installed: Installed, tmp_path: Path) -> Iterator[PluginServer]:
    """The plugin server as kong.conf's start command runs it (gevent, Python style)."""
    conf = (installed.root / "kong" / "kong.conf").read_text()
    line = next(ln for ln in conf.splitlines() if ln.startswith("pluginserver_routeiq_start_cmd"))
    argv = shlex.split(line.split("=", 1)[1])
    assert argv[0] == "/opt/routeiq/.venv/bin/kong-python-pluginserver"
    assert argv[argv.index("-d") + 1] == "/opt/routeiq/kong" and "-g" in argv
    ps = PluginServer(
        tmp_path, gevent=True, lua_style=False, plugin_dir=installed.root / "kong",
        server_bin=installed.bin / "kong-python-pluginserver", cwd=installed.elsewhere,
    )  # fmt: skip
    with ps:
        yield ps


def test_the_plugin_server_of_the_install_routes(
    installed: Installed, plugin_server: PluginServer
) -> None:
    kong = Kong(plugin_server.socket_path, upstreams={"demo_eco", "demo_premium", "demo_local"})
    try:
        assert kong.plugin_info()["Name"] == "routeiq"
        config = installed.root / "config" / "routeiq.yaml"
        instance = kong.start_instance(plugin_conf(config))
        rec = kong.request(instance, Request.chat("gpt4"))
        assert rec.exit is None and rec.upstream == "demo_premium", rec
        assert rec.upstream_headers["x-routeiq-backend"] == "premium"
        listing = kong.request(instance, Request(method="GET", path="/v1/models"))
        assert listing.exit is not None and json.loads(listing.exit[1])["object"] == "list"
    finally:
        kong.close()


def test_validate_explain_and_serve_from_elsewhere(installed: Installed) -> None:
    config = installed.root / "config" / "routeiq.yaml"
    routeiq = str(installed.bin / "routeiq")
    body = json.dumps({"model": "reasoning", "messages": [{"role": "user", "content": "hi"}]})
    out = subprocess.run(
        [routeiq, "explain", "--config", str(config)], input=body,
        capture_output=True, text=True, timeout=120, cwd=installed.elsewhere,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["upstream_model"] == "o3-2025-04-16"
    grpc, admin = free_port(), free_port()
    proc = ManagedProcess(
        [
            routeiq,
            "serve",
            "--config",
            str(config),
            "--port",
            str(grpc),
            "--admin-port",
            str(admin),
        ],
        installed.elsewhere / "serve.log",
    )
    try:
        wait_for_port(grpc, 60, proc.proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=10) as r:
            assert r.status == 200
    finally:
        proc.stop()
