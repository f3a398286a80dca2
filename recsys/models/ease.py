"""EASE: an item-item linear autoencoder in closed form (Steck, WWW 2019).

With ``X`` the users x items input (``EASEConfig.weighting``) and
``G = X^T X + lambda I``, ``P = G^{-1}``, the item-item weights are

``B = I - P diag(1 / diag(P))`` (so ``diag(B) = 0``),

the minimiser of ``||X - X B||_F^2 + lambda ||B||_F^2`` under ``diag(B) = 0``.
A user's scores are ``x_u B``; an unknown user (row -1) is scored as the mean
user. One regularisation parameter; ``B`` is dense items x items (memory
``4 n_items^2`` bytes once fitted, kept as float32; the fit inverts the
Gram matrix in float64, ``8 n_items^2`` bytes more), so :class:`EASEConfig`
bounds the catalogue size: ``max_items`` (default 20,000: a 1.6 GB ``B``) for
evaluation, and the engine serves EASE only up to
:data:`SERVABLE_MAX_ITEMS` products (10,000: ``B`` 400 MB float32, 800 MB
more while fitting); above it the collaborative slot falls back to PureSVD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as la

from recsys.config import ConfigError
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting, model_matrix
from recsys.models.base import Recommender

__all__ = ["EASE", "EASEConfig", "SERVABLE_MAX_ITEMS", "collaborative_slot"]

SERVABLE_MAX_ITEMS = 10_000
"""Largest catalogue whose EASE the engine serves (dense float32 ``B``: 400 MB at the bound)."""


@dataclass(frozen=True)
class EASEConfig:
    """``l2``: the regularisation ``lambda`` (Steck's best values are in the
    hundreds for binary data); ``weighting``: the input ``X`` (default: each
    product once, at its most recent event's 30-day-decayed weight); ``max_items``: refuse catalogues whose dense ``B`` would be larger."""

    l2: float = 500.0
    weighting: Weighting | None = field(default_factory=lambda: Weighting(half_life_days=30.0, repeats="binary"))
    max_items: int = 20_000

    def __post_init__(self) -> None:
        if isinstance(self.l2, bool) or not isinstance(self.l2, (int, float)) or not self.l2 > 0:
            raise ConfigError(f"EASEConfig.l2 must be a number > 0, got {self.l2!r}")
        if isinstance(self.max_items, bool) or not isinstance(self.max_items, int) or self.max_items < 1:
            raise ConfigError(f"EASEConfig.max_items must be a positive int, got {self.max_items!r}")
        object.__setattr__(self, "weighting", Weighting.coerce(self.weighting))


class EASE(Recommender):
    """Closed-form EASE (see the module docstring). Learned state: ``weights_``
    (``B``, items x items float32), ``profiles_`` (the input ``X``)."""

    name = "ease"
    reason = "Often bought together with your products"

    def __init__(self, config: EASEConfig | None = None) -> None:
        self.config = config if config is not None else EASEConfig()

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        n_items = interactions.shape[1]
        if n_items > self.config.max_items:
            raise ValueError(f"EASE keeps a dense {n_items} x {n_items} matrix: more than "
                             f"EASEConfig.max_items={self.config.max_items} products")
        x = model_matrix(dataset, interactions, self.config.weighting).astype(np.float64).tocsr()
        gram = (x.T @ x).toarray()
        gram[np.diag_indices(n_items)] += self.config.l2
        p = la.inv(gram, overwrite_a=True, check_finite=False)
        b = p / (-np.diag(p))[None, :]
        b[np.diag_indices(n_items)] = 0.0
        self.weights_ = b.astype(np.float32)
        del p, b
        self.profiles_ = x
        self.mean_profile_ = np.asarray(x.mean(axis=0)).ravel()

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise RuntimeError("EASE is not fitted: call fit(dataset) first")
        rows = np.asarray(rows, dtype=np.int64)
        profiles = self.profiles_[np.where(rows >= 0, rows, 0)].toarray().astype(np.float32)
        profiles[rows < 0] = self.mean_profile_
        return (profiles @ self.weights_).astype(np.float64)


def collaborative_slot(config: EASEConfig | None, n_products: int) -> dict[str, object]:
    """Which model fills the engine's collaborative slot, and why: ``"ease"``
    when ``config`` is given and ``n_products <= SERVABLE_MAX_ITEMS``, else ``"pure_svd"``."""
    if config is None:
        return {"model": "pure_svd", "reason": "configured (EngineConfig.ease is None)"}
    if n_products <= SERVABLE_MAX_ITEMS:
        return {"model": "ease", "l2": config.l2, "max_items": SERVABLE_MAX_ITEMS}
    return {"model": "pure_svd", "reason": f"EASE configured but {n_products} products exceed the servable bound "
            f"of {SERVABLE_MAX_ITEMS} (dense float32 item x item matrix)"}
