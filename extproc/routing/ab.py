"""Sticky weighted assignment of experiment arms (A/B between routing strategies).

The arm depends only on ``sha256(experiment name, key)``: the same user (or prompt, when no
key is given) always lands on the same arm, across replicas and restarts, with no state and
no randomness. Including the experiment name re-shuffles users between experiments, so one
experiment's arm does not predict the next one's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from extproc.routing.spec import Experiment


@dataclass(frozen=True, slots=True)
class Assignment:
    """The arm a key falls in, and the arm computed in shadow (or None)."""

    experiment: str
    arm: str
    shadow: str | None


@dataclass(frozen=True, slots=True)
class Splitter:
    """Precomputed cumulative weights of one experiment."""

    name: str
    arms: tuple[str, ...]
    every_arm: tuple[str, ...]
    bounds: tuple[int, ...]
    total: int
    shadow: bool

    @classmethod
    def of(cls, experiment: Experiment) -> Splitter:
        arms, bounds, acc = [], [], 0
        for arm, weight in experiment.split.items():
            if weight > 0:
                acc += weight
                arms.append(arm)
                bounds.append(acc)
        return cls(
            experiment.name,
            tuple(arms),
            tuple(experiment.split),
            tuple(bounds),
            acc,
            experiment.shadow,
        )

    def bucket(self, key: str) -> float:
        """Where ``key`` falls in [0, 1): uniform over keys, stable forever."""
        digest = hashlib.sha256(f"{self.name}\0{key}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def assign(self, key: str) -> Assignment:
        point = self.bucket(key) * self.total
        index = next(i for i, b in enumerate(self.bounds) if point < b)
        arm = self.arms[index]
        shadow = None
        if self.shadow:  # the next arm in declaration order, zero-weight arms included
            shadow = self.every_arm[(self.every_arm.index(arm) + 1) % len(self.every_arm)]
        return Assignment(self.name, arm, shadow)
