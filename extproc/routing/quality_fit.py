"""Model families for the need model, each exportable to the numpy arrays serving reads.

Every fitter takes standardised-on-the-fly inputs ``x`` (``[n, 384 + features]``), a
target ``y`` in [0, 1] and per-row weights, and returns a :class:`Fitted` holding the
arrays of :class:`extproc.routing.quality.LearnedNeed` (``mean``, ``scale``, dense
layers, ``output``). Ridge is solved in closed form with numpy; logistic regression
(soft labels through weighted duplication) and the MLP use scikit-learn, imported here
only (training), never on the serving path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from extproc.routing.quality import LearnedNeed

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Fitted:
    """Arrays of a dense need model (one layer: linear/logistic)."""

    mean: Array
    scale: Array
    weights: tuple[Array, ...]
    biases: tuple[Array, ...]
    output: str

    def model(self, use_embedding: bool = True) -> LearnedNeed:
        f32 = np.float32
        return LearnedNeed(
            mean=self.mean.astype(f32),
            scale=self.scale.astype(f32),
            weights=tuple(w.astype(f32) for w in self.weights),
            biases=tuple(b.astype(f32) for b in self.biases),
            output=self.output,
            use_embedding=use_embedding,
        )

    def predict(self, x: Array) -> npt.NDArray[np.float64]:
        """Need of standardisable rows ``x`` (embedding + features already joined)."""
        h = (x - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        z = (h @ self.weights[-1] + self.biases[-1])[:, 0].astype(np.float64)
        if self.output == "sigmoid":
            out: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
            return out
        return np.clip(z, 0.0, 1.0)


def standardiser(x: Array, w: Array) -> tuple[Array, Array]:
    """Weighted mean and standard deviation per column (a zero scale becomes 1)."""
    mean = np.average(x, axis=0, weights=w)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    return mean, np.where(scale > 1e-8, scale, 1.0)


def fit_ridge(x: Array, y: Array, w: Array, alpha: float) -> Fitted:
    """Weighted ridge regression on standardised inputs, output clipped to [0, 1].

    ``alpha`` is per unit of total weight (weights are normalised to mean 1), so it means
    the same for any number of rows.
    """
    mean, scale = standardiser(x, w)
    z = (x - mean) / scale
    wn = w / w.mean()
    ybar = float(np.average(y, weights=wn))
    zw = z * wn[:, None]
    gram = z.T @ zw + alpha * len(y) * np.eye(z.shape[1])
    coef = np.linalg.solve(gram, zw.T @ (y - ybar))
    return Fitted(mean, scale, (coef[:, None],), (np.array([ybar]),), "clip")


def fit_logistic(x: Array, y: Array, w: Array, c: float) -> Fitted:
    """Weighted logistic regression; a soft label y counts as y x 1 plus (1 - y) x 0."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = standardiser(x, w)
    z = (x - mean) / scale
    soft = ~np.isin(y, (0.0, 1.0))
    if soft.any():
        z = np.concatenate([z, z[soft]])
        w = np.concatenate([np.where(soft, y, 1.0) * w, (1.0 - y[soft]) * w[soft]])
        y = np.concatenate([np.where(soft, 1.0, y), np.zeros(int(soft.sum()))])
    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(z, y.astype(int), sample_weight=w / w.mean())
    return Fitted(mean, scale, (model.coef_.T.copy(),), (model.intercept_.copy(),), "sigmoid")


def fit_mlp(x: Array, y: Array, w: Array, hidden: int, alpha: float, seed: int = 0) -> Fitted:
    """One ReLU hidden layer regressor (sklearn ``MLPRegressor``), output clipped."""
    from sklearn.neural_network import MLPRegressor

    mean, scale = standardiser(x, w)
    model = MLPRegressor(
        hidden_layer_sizes=(hidden,),
        alpha=alpha,
        early_stopping=True,
        max_iter=200,
        random_state=seed,
    )
    model.fit((x - mean) / scale, y, sample_weight=w / w.mean())
    coefs: Sequence[Array] = model.coefs_
    return Fitted(mean, scale, tuple(coefs), tuple(model.intercepts_), "clip")


def knn_smooth(train: Array, y: Array, query: Array, k: int, batch: int = 2048) -> Array:
    """Mean label of the ``k`` most cosine-similar training rows (unit embeddings)."""
    out = np.zeros(len(query))
    for start in range(0, len(query), batch):
        sims = query[start : start + batch] @ train.T
        idx = np.argpartition(-sims, k, axis=1)[:, :k]
        out[start : start + batch] = y[idx].mean(axis=1)
    return out
