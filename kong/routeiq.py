"""Entry module Kong's Python plugin server loads: the ``routeiq`` plugin.

kong-pdk looks for ``Plugin``, ``Schema``, ``version`` and ``priority`` in this file
(the plugin is named after it) and instantiates ``Plugin(config)`` once per plugin
configuration and nginx worker. This file only binds the package's ``RouteIQPlugin`` to
the one ``RuntimeHost`` of this process (event loop thread + shared Runtimes); the
logic lives in ``extproc.kong``. Nothing heavy happens at import: the plugin server
imports this file for ``--dump-all-plugins`` (Kong's query command) too.

Run as a script, it is a dedicated plugin server (``python kong/routeiq.py -p PREFIX``,
``--dump`` for the query command).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from extproc import __version__
from extproc.kong import PRIORITY, SCHEMA, RouteIQPlugin, RuntimeHost

Schema = list(SCHEMA)
version = __version__
priority = PRIORITY

_HOST = RuntimeHost()  # one per plugin-server process, shared by every instance


class Plugin(RouteIQPlugin):
    """The class kong-pdk instantiates; phases: ``access`` and ``log``."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config, _HOST)


if __name__ == "__main__":
    from kong_pdk.cli import start_dedicated_server

    start_dedicated_server("routeiq", Plugin, version, priority, Schema)
