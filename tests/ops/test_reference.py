"""docs/configuration.md is generated from the models and must be current."""

from __future__ import annotations

from pathlib import Path

from extproc.config.reference import main, render_reference
from extproc.config.settings import Settings
from tests.ops.conftest import REPO

DOC = REPO / "docs" / "configuration.md"


def test_configuration_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "docs/configuration.md is stale: run "
        "`python -m extproc.config.reference > docs/configuration.md`"
    )


def test_every_setting_and_section_is_documented() -> None:
    text = render_reference()
    for name in Settings.model_fields:
        assert f"`ROUTEIQ_{name.upper()}`" in text
    for section in ("`spec.backends[]`", "`spec.policy.opa`", "`spec.state.limits[]`",
                    "`spec.routing.experiments[]`"):  # fmt: skip
        assert f"### {section}" in text
    assert "| `tokenFile` |" in text and "| `contextWindow` | integer | `128000` | > 0 |" in text
    assert '`["json", "streaming", "tools"]`' in text  # sets sorted: output is deterministic


def test_check_mode(tmp_path: Path) -> None:
    stale = tmp_path / "c.md"
    stale.write_text("old")
    assert main(["--check", str(stale)]) == 1
    stale.write_text(render_reference())
    assert main(["--check", str(stale)]) == 0
