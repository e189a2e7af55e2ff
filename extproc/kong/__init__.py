"""Kong adapter: a kong-pdk external plugin around ``Runtime.decide``/``on_response``.

``kong/routeiq.py`` (the file Kong's plugin server loads) binds ``RouteIQPlugin`` to one
``RuntimeHost`` per process; see ``docs/kong.md`` for the set-up. Importing this package
loads nothing: each name below is imported from its module on first use (the plugin
module brings the whole runtime with it: engines, the model runtime, telemetry).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from extproc.kong.host import RuntimeHost
    from extproc.kong.plugin import PRIORITY, SCHEMA, PluginConf, RouteIQPlugin

__all__ = ["PRIORITY", "SCHEMA", "PluginConf", "RouteIQPlugin", "RuntimeHost"]
_WHERE = {"RuntimeHost": "host"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'extproc.kong' has no attribute {name!r}")
    return getattr(importlib.import_module(f"extproc.kong.{_WHERE.get(name, 'plugin')}"), name)
