"""Which routed requests read the upstream status when backend health is sampled.

Reading a status costs the proxy one more ext_proc message per request. With
``health.sampleEvery: N`` a process reads 1 request in N while it has seen no failure
within the health window, and every request from a failure on until a window passes
without one. The choice is made when the request headers arrive, before the backend
is known: ext_proc only takes a per-request processing mode in a headers answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from extproc.state.types import HealthRule


@dataclass(slots=True)
class StatusSampler:
    """One per process (not shared across replicas: each samples its own traffic)."""

    _count: int = 0
    _watch_until: float = float("-inf")  # monotonic seconds

    def wants(self, rule: HealthRule, now: float) -> bool:
        """Whether the request arriving at ``now`` should read its upstream status."""
        every = rule.sample_every
        if every <= 1 or now < self._watch_until:
            return True
        read = self._count % every == 0
        self._count = (self._count + 1) % every
        return read

    def saw(self, rule: HealthRule, status: int, now: float) -> None:
        """An upstream status was read: a failure makes every request read until the
        health window has passed without another."""
        if rule.is_failure(status):
            self._watch_until = now + rule.window_ms / 1000
