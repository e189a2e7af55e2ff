"""The ``spec.state`` section of the RoutingConfig: limits, affinity, health."""

from __future__ import annotations

from extproc.config.base import Spec


class StateSpec(Spec):
    """Budgets, session affinity and backend health rules."""
