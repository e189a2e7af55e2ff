"""Routing: embedder, classifiers, signals, A/B assignment (selector and profiles: lead).

The public contract used by ``decide()``::

    router = build_router(spec, base_dir)          # once per snapshot; ConfigError on bad artefacts
    result = router.classify(request, sticky_key)  # per request; -> Classification (frozen)
"""

from extproc.routing.router import Classification, Router, build_router

__all__ = ["Classification", "Router", "build_router"]
