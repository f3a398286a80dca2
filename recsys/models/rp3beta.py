"""RP3beta: a three-step random walk on the user-item graph, popularity-penalised (Paudel et al., TiiS 2017).

With ``X`` the users x items input (:class:`RP3betaConfig` ``weighting``),
``P_ui`` its rows and ``P_iu`` the rows of ``X^T`` normalised to sum 1 (the
transition probabilities user -> item and item -> user), the item-item weight is

``W_ij = (P_iu^alpha P_ui^alpha)_ij / pop_j^beta``, ``W_ii = 0``,

(``^alpha`` elementwise; ``pop_j`` the number of users of ``j``): the
probability of the walk ``i -> u -> j``, sharpened by ``alpha`` and divided by
the destination's popularity to the power ``beta`` (``beta = 0``: the plain
P3alpha). Only the ``k`` largest weights of each row are kept (sparse
``W``: ``n_items x k`` entries), computed in blocks of ``block`` items so no
dense items x items matrix is ever held. A user's scores are ``x_u W``; an
unknown user (row -1) is scored as the mean user. The defaults (``alpha`` 1,
``beta`` 0.5, ``k`` 200) are in the range Dacrema et al. (RecSys 2019) report
as tuned values on purchase data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsys.config import ConfigError
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions, Weighting, model_matrix
from recsys.models.base import Recommender

__all__ = ["RP3beta", "RP3betaConfig"]


@dataclass(frozen=True)
class RP3betaConfig:
    """``alpha`` (> 0): the transition probabilities' exponent; ``beta`` (>= 0):
    the popularity penalty's exponent; ``k``: neighbours kept per item;
    ``weighting``: the input ``X`` (default: each product once, at its most
    recent event's 30-day-decayed weight); ``block``: items per computed block."""

    alpha: float = 1.0
    beta: float = 0.5
    k: int = 200
    weighting: Weighting | None = field(default_factory=lambda: Weighting(half_life_days=30.0, repeats="binary"))
    block: int = 1024

    def __post_init__(self) -> None:
        for name, low, strict in (("alpha", 0.0, True), ("beta", 0.0, False)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
                value > low if strict else value >= low)
            if not ok:
                raise ConfigError(f"RP3betaConfig.{name} must be a number {'>' if strict else '>='} {low:g}, "
                                  f"got {value!r}")
        for name in ("k", "block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"RP3betaConfig.{name} must be a positive int, got {value!r}")
        object.__setattr__(self, "weighting", Weighting.coerce(self.weighting))


def _row_normalised(x: sp.csr_matrix, alpha: float) -> sp.csr_matrix:
    sums = np.asarray(x.sum(axis=1)).ravel()
    out = sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ x
    out = out.tocsr()
    if alpha != 1.0:
        out.data = np.power(out.data, alpha)
    return out


def rp3beta_weights(x: sp.csr_matrix, config: RP3betaConfig) -> sp.csr_matrix:
    """The sparse item-item ``W`` of the module docstring (items x items, ``k`` per row, float32)."""
    n_items = x.shape[1]
    p_ui = _row_normalised(x, config.alpha)
    p_iu = _row_normalised(x.T.tocsr(), config.alpha)
    pop = np.diff(x.tocsc().indptr).astype(np.float64)
    penalty = np.divide(1.0, np.power(pop, config.beta), out=np.zeros_like(pop), where=pop > 0)
    k = min(config.k, max(n_items - 1, 1))
    rows, cols, vals = [], [], []
    for start in range(0, n_items, config.block):
        stop = min(start + config.block, n_items)
        block = (p_iu[start:stop] @ p_ui).toarray() * penalty[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n_items else np.tile(np.arange(n_items),
                                                                                        (stop - start, 1))
        values = np.take_along_axis(block, top, axis=1)
        keep = values > 0
        rows.append(np.repeat(np.arange(start, stop), k).reshape(-1, k)[keep])
        cols.append(top[keep])
        vals.append(values[keep])
    weights = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n_items, n_items))
    weights.sort_indices()
    return weights


class RP3beta(Recommender):
    """RP3beta (see the module docstring). Learned state: ``weights_`` (sparse
    ``W``, items x items), ``profiles_`` (the input ``X``)."""

    name = "rp3beta"
    reason = "Often bought together with your products"

    def __init__(self, config: RP3betaConfig | None = None) -> None:
        self.config = config if config is not None else RP3betaConfig()

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        x = model_matrix(dataset, interactions, self.config.weighting).astype(np.float64).tocsr()
        self.weights_ = rp3beta_weights(x, self.config)
        self.profiles_ = x.astype(np.float32)
        self.mean_profile_ = np.asarray(x.mean(axis=0), dtype=np.float32).ravel()

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        if not hasattr(self, "weights_"):
            raise RuntimeError("RP3beta is not fitted: call fit(dataset) first")
        rows = np.asarray(rows, dtype=np.int64)
        scores = np.asarray((self.profiles_[np.where(rows >= 0, rows, 0)] @ self.weights_).todense(),
                            dtype=np.float64)
        if (rows < 0).any():
            scores[rows < 0] = self.weights_.T @ self.mean_profile_
        return scores
