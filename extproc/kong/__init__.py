"""Kong adapter: a kong-pdk external plugin around ``Runtime.decide``/``on_response``.

``kong/routeiq.py`` (the file Kong's plugin server loads) binds ``RouteIQPlugin`` to one
``RuntimeHost`` per process; see ``docs/kong.md`` for the set-up.
"""

from extproc.kong.host import RuntimeHost
from extproc.kong.plugin import PRIORITY, SCHEMA, PluginConf, RouteIQPlugin

__all__ = ["PRIORITY", "SCHEMA", "PluginConf", "RouteIQPlugin", "RuntimeHost"]
