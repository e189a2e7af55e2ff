"""Routing: embedder, classifiers, strategies, signals, the cost-quality rule, A/B,
profiles, rankers and the selector.

The public contract used by ``decide()``::

    router = build_router(spec, base_dir)          # once per snapshot; ConfigError on bad artefacts
    result = router.classify(request, sticky_key)  # per request; -> Classification (frozen)

The names below are imported on first use, so that the routing spec, profiles and
selector can be read without loading the model runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from extproc.routing.router import Classification, Router, build_router

__all__ = ["Classification", "Router", "build_router"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'extproc.routing' has no attribute {name!r}")
    return getattr(importlib.import_module("extproc.routing.router"), name)
