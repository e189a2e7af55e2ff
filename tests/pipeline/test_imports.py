"""The pure core stays light: importing it loads no I/O client, engine or model runtime."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("redis", "regorus", "onnxruntime", "opentelemetry.sdk", "grpc", "sklearn", "torch")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return {m for m in out.split() if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_decision_module_loads_nothing_heavy() -> None:
    assert loaded_after("import extproc.decision") == set()


def test_state_types_do_not_load_the_redis_client() -> None:
    assert loaded_after("import extproc.state.types, extproc.state.rules") == set()


def test_specs_selector_and_adapter_packages_load_no_engine_or_model_runtime() -> None:
    assert loaded_after("import extproc.config.schema, extproc.routing.selector") == set()
    assert loaded_after("import extproc.policy, extproc.routing, extproc.kong") == set()


def test_backend_types_are_a_leaf_of_the_config() -> None:
    """The selector, rankers and cost accounting name a ``Backend`` without pulling in
    the whole resource: no subsystem spec loads with ``extproc.config.backend``."""
    code = (
        "import sys; import extproc.config.backend, extproc.routing.selector, "
        "extproc.routing.rankers, extproc.cost.prices; "
        "print('\\n'.join(m for m in sys.modules if m.startswith('extproc.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert "extproc.config.backend" in out
    assert not {"extproc.config.schema", "extproc.policy.spec", "extproc.state.spec"} & set(out)
