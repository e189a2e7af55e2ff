"""Shared routing fixtures: the shipped models, a router, request builders, tiny artefacts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from extproc.api.openai import Endpoint, ParsedRequest, parse_request
from extproc.routing import Router, build_router
from extproc.routing.embedder import Embedder, load_embedder
from extproc.routing.spec import RoutingSpec
from extproc.routing.train import fit, save_model

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"


def chat(text: str, **extra: Any) -> ParsedRequest:
    body = {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}
    return parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, orjson.dumps(body)
    )


def body_request(body: dict[str, Any]) -> ParsedRequest:
    return parse_request(
        Endpoint.CHAT_COMPLETIONS, "POST", "/v1/chat/completions", {}, orjson.dumps(body)
    )


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return load_embedder(MODELS / "embedder" / "manifest.json")


@pytest.fixture(scope="session")
def router() -> Router:
    return build_router(RoutingSpec(), REPO)


TINY = {
    "coding": [
        "Write a Python function to sort a list.",
        "Fix this JavaScript bug.",
        "Implement a hash map in C.",
    ],
    "chat": ["hello, how are you?", "good morning!", "tell me a joke"],
    "math": ["What is 12 * 13?", "Solve 2x + 3 = 9.", "Integrate x^2."],
}


def tiny_data() -> tuple[list[str], list[str]]:
    texts = [t for ts in TINY.values() for t in ts]
    labels = [c for c, ts in TINY.items() for _ in ts]
    return texts, labels


def write_tiny_models(
    root: Path, embedder: Embedder, strategies: Sequence[str] = ("centroid", "knn")
) -> Path:
    """A modelsDir with a link to the shipped embedder and tiny trained strategies."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "embedder").symlink_to(MODELS / "embedder")
    texts, labels = tiny_data()
    x = embedder.embed_many(texts)
    for strategy in strategies:
        params = {"k": 1} if strategy == "knn" else None
        classes, arrays, p = fit(strategy, x, labels, params=params)
        save_model(
            root / strategy,
            strategy,
            classes,
            arrays,
            p,
            kind="category",
            embedder_sha256=embedder.fingerprint,
            data={},
            metrics={},
            recipe="tests",
        )
    return root


def unit_rows(rng: np.random.Generator, n: int, d: int = 384) -> np.ndarray:
    x = rng.normal(size=(n, d)).astype(np.float32)
    out: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out
