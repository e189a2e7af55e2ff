"""A classifier or need model is only loaded with the embedder it was trained on.

Vectors of another embedder live in another space: the model would still answer, with
confident nonsense. The manifests record the embedder's sha256; ``build_router``
compares it with the loaded embedder's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from extproc.routing import build_router
from extproc.routing.artefacts import ArtefactError
from extproc.routing.spec import RoutingSpec

from .conftest import MODELS

OTHER = "0" * 64


def _models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    (root / "embedder").symlink_to(MODELS / "embedder", target_is_directory=True)
    for name in ("centroid", "quality", "strongweak"):
        shutil.copytree(MODELS / name, root / name)
    return root


def _rewrite(manifest: Path, key: str, value: object) -> None:
    data = json.loads(manifest.read_text())
    data[key] = value
    manifest.write_text(json.dumps(data))


def test_matching_artefacts_load(tmp_path: Path) -> None:
    router = build_router(RoutingSpec(models_dir=str(_models(tmp_path))), tmp_path)
    assert (
        router.embedder.fingerprint
        == json.loads((MODELS / "embedder" / "manifest.json").read_text())["files"][
            router.embedder.model
        ]
    )


def test_classifier_of_another_embedder_is_refused(tmp_path: Path) -> None:
    root = _models(tmp_path)
    _rewrite(root / "centroid" / "manifest.json", "embedder", {"model_int8.onnx": OTHER})
    with pytest.raises(ArtefactError, match="trained on the embedder with sha256 000000000000"):
        build_router(RoutingSpec(models_dir=str(root)), tmp_path)


def test_scorer_of_another_embedder_is_refused(tmp_path: Path) -> None:
    root = _models(tmp_path)
    _rewrite(root / "strongweak" / "manifest.json", "embedder", {"model_int8.onnx": OTHER})
    with pytest.raises(ArtefactError, match=r"strongweak.*retrain it with this embedder"):
        build_router(RoutingSpec(models_dir=str(root)), tmp_path)


def test_need_model_of_another_embedder_is_refused(tmp_path: Path) -> None:
    root = _models(tmp_path)
    _rewrite(root / "quality" / "manifest.json", "embedder_sha256", OTHER)
    spec = RoutingSpec.model_validate(
        {"modelsDir": str(root), "costQuality": {"premiumShare": 0.3}}
    )
    with pytest.raises(ArtefactError, match=r"quality.*quality_train"):
        build_router(spec, tmp_path)


def test_artefact_without_a_record_still_loads(tmp_path: Path) -> None:
    root = _models(tmp_path)
    data = json.loads((root / "centroid" / "manifest.json").read_text())
    del data["embedder"]
    (root / "centroid" / "manifest.json").write_text(json.dumps(data))
    assert build_router(RoutingSpec(models_dir=str(root)), tmp_path).models["centroid"]
