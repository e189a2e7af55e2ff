"""An example RouteIQ plug-in module: a backend ranker and a classifier strategy.

A ranker receives the backends that passed every filter and a ``RankContext``, and
returns them in the order they should be tried. It must be deterministic and cheap.
A strategy trains, stores (plain arrays) and serves a category classifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from extproc.config.schema import Backend
from extproc.routing.rankers import RankContext, tier_then_cost


def greenest(backends: Sequence[Backend], ctx: RankContext) -> tuple[Backend, ...]:
    ranked = tier_then_cost(backends, ctx)
    return tuple(sorted(ranked, key=lambda b: not b.in_cluster))  # stable: keeps tier order


class MeanStrategy:
    """An example classifier strategy: one mean prototype per class, cosine softmax.

    ``fit`` trains (any library may be imported lazily here), ``from_arrays`` serves the
    numpy model from the stored arrays, ``input_width`` says the embedding width.
    """

    default_params: ClassVar[Mapping[str, Any]] = {"temperature": 0.1}

    def fit(
        self,
        x: npt.NDArray[np.float32],
        labels: npt.NDArray[np.int64],
        classes: tuple[str, ...],
        groups: Sequence[str] | None,
        params: dict[str, Any],
        seed: int,
    ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]:
        means = np.stack([x[labels == i].mean(axis=0) for i in range(len(classes))])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        return {"means": means.astype(np.float32)}, params

    def from_arrays(
        self,
        classes: tuple[str, ...],
        arrays: Mapping[str, npt.NDArray[Any]],
        params: Mapping[str, Any],
    ) -> MeanModel:
        return MeanModel(classes, arrays["means"].astype(np.float32), float(params["temperature"]))

    def input_width(self, arrays: Mapping[str, npt.NDArray[Any]]) -> int:
        return int(arrays["means"].shape[-1])


class MeanModel:
    def __init__(self, classes: tuple[str, ...], means: npt.NDArray[np.float32], t: float):
        self.classes = classes
        self._means = means
        self._t = t

    def scores(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        z = (x @ self._means.T) / self._t
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out: npt.NDArray[np.float32] = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return out
