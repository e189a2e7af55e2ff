"""docs/deploy.md's check-before-install block, run: ``helm lint``/``helm template``
through Helm's Go SDK (PyPI ``helm-python-sdk``; no ``helm`` binary here) with the very
chart, flags and ``--set-file`` values the block names, and ``routeiq config validate``
as written."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

from extproc.config.schema import RoutingConfig
from tests.docs.blocks import blocks
from tests.fixtures.stack import REPO

DOC = REPO / "docs" / "deploy.md"


def _commands() -> list[list[str]]:
    (block,) = [b for b in blocks(DOC.read_text(), "2. Install the chart") if "helm lint" in b.code]
    joined = block.code.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def _lint(argv: list[str]) -> None:
    assert argv[:3] == ["helm", "lint", "--strict"]
    result = helm.lint(str(REPO / argv[3]), strict=True)
    assert result["errors"] == []
    assert all(m["severity"] <= 1 for m in result["messages"]), result["messages"]


def _template(argv: list[str], out_dir: Path) -> list[dict[str, Any]]:
    assert argv[:2] == ["helm", "template"] and argv[-2] == ">"
    name, chart, rest = argv[2], argv[3], argv[4:-2]
    options = dict(zip(rest[::2], rest[1::2], strict=True))
    assert set(options) == {"-n", "--set-file"}, options
    key, _, path = options["--set-file"].partition("=")
    values = helm.parse_set_file(f"{key}={REPO / path}")
    with helm.Chart.load(str(REPO / chart)) as loaded:
        files = loaded.render(values, name=name, namespace=options["-n"], is_install=True)
    text = "\n---\n".join(t for p, t in sorted(files.items()) if p.endswith(".yaml"))
    (out_dir / argv[-1]).write_text(text)
    return [d for d in yaml.safe_load_all(text) if d]


def test_check_before_install_block(tmp_path: Path) -> None:
    lint, template, validate = _commands()
    _lint(lint)
    docs = _template(template, tmp_path)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds, kinds
    shipped = (REPO / template[template.index("--set-file") + 1].split("=", 1)[1]).read_text()
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    configs = [v for m in maps for k, v in m.get("data", {}).items() if k == "routeiq.yaml"]
    assert configs == [shipped]  # the release carries the file verbatim
    RoutingConfig.model_validate(yaml.safe_load(configs[0]))
    assert validate[:3] == ["routeiq", "config", "validate"]
    out = subprocess.run(
        [sys.executable, "-m", "extproc.cli", *validate[1:]],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 0 and ": OK (" in out.stdout, out.stderr
