"""The ``spec.routing`` section of the RoutingConfig."""

from __future__ import annotations

from typing import Literal

from extproc.config.base import Spec


class RoutingSpec(Spec):
    """How ``auto`` and profile requests are classified."""

    strategy: Literal["default"] = "default"
