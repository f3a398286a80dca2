"""Stage 3 fusion: four strategies, per-user normalised, weighted, then business rules.

For user ``u`` and strategy ``s`` with catalogue scores ``s(u, .)``:

1. **Who answers.** ``s`` answers ``u`` when its score row is not constant
   (``max - min > 1e-12``: a constant row ranks nothing) and, for the
   history-based strategies (``HybridConfig.history_strategies``: knn, svd,
   content), the user has at least one interaction. So a new or unknown user
   is answered by the demographic strategy alone, even where a component has
   its own popularity-like fallback for unknown users (PureSVD's mean user):
   that fallback is not personal and the demographic slot already covers it.
2. **Effective weights.** ``w'_s(u) = w_s a_s(u) / sum_t w_t a_t(u)`` with
   ``a_s(u) = 1`` if ``s`` answers: the weight of a strategy that cannot
   answer moves to those that can, in proportion to their own weights. (A
   new user under 40/30/20/10 is served 100% demographic; a user whose SVD
   row is constant gets knn/content/demographic at 4/7, 2/7, 1/7.) If no
   strategy with a positive weight answers, the answering ones share equally.
3. **Eligibility (hard business rules).** Not bought before (parameter
   ``exclude_purchased``), in stock (``HybridConfig.exclude_out_of_stock``),
   and, for the user's spending tier ``t``, priced at or below the
   ``max_price_quantile`` of the product's category price distribution
   (``HybridConfig.spending_tier_filter``; ``SpendingTierConfig`` in the
   config). They act as an eligibility mask *before* candidate generation
   rather than as a filter on the fused list: the result obeys the same rules,
   but no ineligible product takes a candidate slot or stretches the
   normalisation range (so a list never comes up short because filtered
   products crowded out eligible ones).
4. **Candidates.** ``C_u`` = union over strategies with ``w'_s(u) > 0`` of
   their top-``M`` eligible products that score above the strategy's row
   minimum (``M = max(candidates_per_strategy, n)``).
5. **Per-user normalisation over ``C_u``.** ``"minmax"`` (default):
   ``z_s = (s - min_C s) / (max_C s - min_C s)`` (0 if constant). It keeps
   the *size* of each strategy's score gaps (a product far ahead in k-NN stays
   far ahead) while mapping every strategy to [0, 1], so the weights mean what
   they say. ``"rank"``: ``z_s = (rank_C(s) - 1) / (|C_u| - 1)`` with average
   ranks for ties -- robust to outlying scores but it turns near-ties into
   full rank steps and gives every strategy the same uniform spread whatever
   its confidence.
6. **Fusion.** ``contrib_s(u, i) = w'_s(u) z_s(u, i)``; ``score = sum_s
   contrib_s`` (in [0, 1]); the reason is the reason of the strategy with the
   largest contribution (ties: the order knn, svd, content, demographic).
7. **Diversity rule.** Optionally at most ``category_cap`` products per
   category, taken greedily down the fused ranking.

**Computation.** :meth:`HybridRecommender.recommend` (the batch path behind
``engine.recommend``) and :meth:`HybridRecommender.fuse_rows` (the service's
``/full``, one block per micro-batch) share :meth:`HybridRecommender._fuse`:
per block of users (``block_users``: one users x products float64 block
within ``max_block_bytes``) each strategy scores the block once
(:meth:`~recsys.models.base.Recommender.score_block`: a dense float64 block,
or ``None`` and a hint it answers from -- the k-NN's sparse scores, the
demographic segments), then gives its per-row range (step 1) and its top-``M``
eligible columns above its row minimum (step 4) together
(``range_and_top``; for a dense block one compiled visit of each row,
:func:`~recsys.models.select.range_top`, the exact rule of
:func:`~recsys.models.ranking.top_n_dense`; the k-NN reads its sparse scores,
the demographic strategy walks its precomputed segment ranking); steps 5-7
then work on the union of candidates only, reading each strategy's scores
there (``scores_at``; the k-NN's from its sparse rows), and reasons are looked
up for the final entries only (``reasons_at``). The union, the reads, the
minmax normalisation, the weighted sum, the top-``n`` and the flat entries are
compiled passes (:mod:`recsys.models.fusion`) that give exactly the numpy
results (same operations in the same order, same tie rule); ``"rank"``
normalisation and the category cap stay in numpy/Python. Dense blocks a strategy did not build are built only if
asked for (:class:`ComponentScores`). The results do not depend on the block
size beyond BLAS rounding of the component scores (a one-row product may
differ from a many-row one in the last bit).

Components are any fitted :class:`~recsys.models.base.Recommender` keyed by
``knn, svd, content, demographic`` that share one catalogue order;
:meth:`HybridRecommender.from_fitted` wraps already-fitted ones (no refit),
:meth:`HybridRecommender.with_weights` re-weights without refitting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.config import ConfigError, FusionWeights
from recsys.data.dataset import Dataset
from recsys.interactions import Interactions
from recsys.models import fusion
from recsys.models.base import Recommender, check_n, check_user_ids
from recsys.models.knn import NeighbourRecommender
from recsys.models.ranking import take_rows
from recsys.validation import check_ints

__all__ = [
    "CONTRIB_COLUMNS",
    "ComponentScores",
    "STRATEGIES",
    "FusedTopN",
    "HybridConfig",
    "HybridRecommender",
    "default_components",
]

STRATEGIES: tuple[str, ...] = ("knn", "svd", "content", "demographic")
"""Strategy keys, in the order of :class:`~recsys.config.FusionWeights`."""

CONTRIB_COLUMNS: list[str] = [f"contrib_{s}" for s in STRATEGIES]

_EPS = 1e-12


@dataclass(frozen=True)
class HybridConfig:
    """Fusion settings (weights live in :class:`~recsys.config.FusionWeights`)."""

    candidates_per_strategy: int = 100
    normalization: str = "minmax"
    category_cap: int | None = None
    exclude_out_of_stock: bool = True
    spending_tier_filter: bool = True
    history_strategies: tuple[str, ...] = ("knn", "svd", "content")

    def __post_init__(self) -> None:
        object.__setattr__(self, "history_strategies", tuple(self.history_strategies))
        unknown = [s for s in self.history_strategies if s not in STRATEGIES]
        if unknown:
            raise ConfigError(f"HybridConfig.history_strategies has unknown strategies {unknown}; known {list(STRATEGIES)}")
        check_ints(self, "candidates_per_strategy")
        if self.normalization not in ("minmax", "rank"):
            raise ConfigError(f"HybridConfig.normalization must be 'minmax' or 'rank', got {self.normalization!r}")
        if self.category_cap is not None:
            check_ints(self, "category_cap")


@dataclass(frozen=True)
class FusedTopN:
    """Top-n of a block of users as flat arrays, one entry per recommendation
    ordered by (row, rank): ``row`` (position in the block), ``col`` (product
    column), ``score``, ``rank`` (1..), ``contributions`` (entries x 4, in
    :data:`STRATEGIES` order, summing to ``score``), ``reason``; ``weights``
    are the effective weights per row of the block (rows x 4);
    ``component_scores`` the strategies' raw scores (rows x products, by
    strategy name; a :class:`ComponentScores`, built on first access where
    the fusion did not need the whole block)."""

    row: np.ndarray
    col: np.ndarray
    score: np.ndarray
    rank: np.ndarray
    contributions: np.ndarray
    reason: np.ndarray
    weights: np.ndarray
    component_scores: Mapping[str, np.ndarray] = field(default_factory=dict)


def _neighbour_block(model: NeighbourRecommender, rows: np.ndarray) -> tuple[np.ndarray | None, object]:
    """A k-NN model's block as :meth:`~recsys.models.knn.NeighbourRecommender.score_block` gives it,
    but without the float64 dense copy when its own ``score_range`` and ``top_candidates`` read
    everything from the sparse scores (float32, finite, non-negative: then its floor is >= 0);
    the fusion reads the scores at its candidates from them too. Same values: the dense block is
    exactly these sparse scores, widened to float64."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) <= 1:
        return model.score_block(rows)
    scores = model.score_history(take_rows(model.profile_interactions().matrix, rows), rows).tocsr()
    if scores.dtype == np.float32 and np.isfinite(scores.data).all() and (scores.data >= 0).all():
        return None, scores
    return scores.toarray().astype(np.float64), scores


class ComponentScores(Mapping[str, np.ndarray]):
    """The strategies' float64 score blocks (rows x products) of one fused block, by strategy name.

    A strategy that answered the fusion from its hint (``score_block`` gave ``None``) gets its
    block built on first access, and a float32 block (the content strategy's) is widened then
    (:meth:`~recsys.models.base.Recommender.dense_block`), once; ``at_candidates`` holds the raw
    scores the fusion read at its candidates (rows x K)."""

    def __init__(self, components: Mapping[str, Recommender], rows: np.ndarray,
                 blocks: dict[str, np.ndarray | None], hints: Mapping[str, object]) -> None:
        self._components, self._rows, self._blocks, self._hints = components, rows, blocks, hints
        self._dense: dict[str, np.ndarray] = {}
        self.at_candidates: dict[str, np.ndarray] = {}

    def raw(self, name: str) -> np.ndarray | None:
        """The block as the strategy returned it (None where it was not built)."""
        return self._blocks[name]

    def __getitem__(self, name: str) -> np.ndarray:
        block = self._blocks[name]
        if block is not None and block.dtype == np.float64:
            return block
        if name not in self._dense:
            self._dense[name] = np.asarray(self._components[name].dense_block(self._rows, block, self._hints[name]),
                                           dtype=np.float64)
        return self._dense[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._blocks)

    def __len__(self) -> int:
        return len(self._blocks)


def check_weights(weights: FusionWeights | Mapping[str, float] | None) -> FusionWeights | None:
    """A :class:`FusionWeights` from itself or a mapping (validated: non-negative, sum 1)."""
    if weights is None or isinstance(weights, FusionWeights):
        return weights
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(STRATEGIES))
        if unknown:
            raise ConfigError(f"unknown fusion strategies {unknown}; expected keys among {list(STRATEGIES)}")
        return FusionWeights(**{s: float(weights.get(s, 0.0)) for s in STRATEGIES})
    raise ConfigError(f"weights must be a FusionWeights or a mapping of {list(STRATEGIES)}, got {type(weights).__name__}")


def default_components() -> dict[str, Recommender]:
    """Fresh, unfitted default strategies (imported here: Stage 1-2 modules)."""
    from recsys.models.content import ContentRecommender
    from recsys.models.demographic import DemographicRecommender
    from recsys.models.knn import ItemKNN
    from recsys.models.svd import PureSVD

    return {"knn": ItemKNN(), "svd": PureSVD(), "content": ContentRecommender(), "demographic": DemographicRecommender()}


class HybridRecommender(Recommender):
    """Weighted fusion of k-NN, SVD, content and demographic strategies
    (formulas and rules in the module docstring).

    ``components``: strategies to fit in :meth:`fit` (default:
    :func:`default_components`). A strategy may be left out only if its
    weight is 0. ``weights`` default to ``dataset.config.fusion`` (40/30/20/10).

    Learned state: ``components_``, ``weights_``, ``in_stock_`` (bool per
    product), ``tier_allowed_`` (tiers x products), ``user_tier_`` (tier index
    per user row), ``category_codes_``.
    """

    name = "hybrid"
    reason = "Recommended for you"
    #: bound on one users x products float64 score block in :meth:`recommend` (about 8 such arrays
    #: are alive per block): 255 users at 20,000 products, two even pieces of the content strategy's
    #: profile table; 4-5 % more users/s than 104-user blocks, same results (benchmarks/bench_batch.py)
    max_block_bytes: int = 39 * 2**20

    def __init__(
        self,
        weights: FusionWeights | Mapping[str, float] | None = None,
        config: HybridConfig | None = None,
        components: Mapping[str, Recommender] | Callable[[], Mapping[str, Recommender]] | None = None,
    ) -> None:
        self.weights = check_weights(weights)
        self.config = config or HybridConfig()
        self.components = components

    # -- construction ---------------------------------------------------------
    @classmethod
    def from_fitted(
        cls,
        components: Mapping[str, Recommender],
        weights: FusionWeights | Mapping[str, float] | None = None,
        config: HybridConfig | None = None,
    ) -> HybridRecommender:
        """Wrap already-fitted strategies (no refit); they must share one
        user and product index (fit them on the same data set)."""
        model = cls(weights, config, components=None)
        model._attach(dict(components))
        return model

    def with_weights(
        self, weights: FusionWeights | Mapping[str, float], config: HybridConfig | None = None
    ) -> HybridRecommender:
        """The same fitted strategies under other weights (cheap: no refit)."""
        self._check_fitted()
        return HybridRecommender.from_fitted(self.components_, weights, config or self.config)

    def _fit(self, dataset: Dataset, interactions: Interactions) -> None:
        spec = self.components() if callable(self.components) else self.components
        components = dict(spec) if spec is not None else default_components()
        for comp in components.values():
            comp.fit(dataset, interactions)
        self._attach(components)

    def _attach(self, components: dict[str, Recommender]) -> None:
        unknown = sorted(set(components) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategy keys {unknown}; expected keys among {list(STRATEGIES)}")
        if not components:
            raise ValueError("HybridRecommender needs at least one component strategy")
        for key, comp in components.items():
            if not isinstance(comp, Recommender):
                raise TypeError(f"component {key!r} must be a Recommender, got {type(comp).__name__}")
            if not hasattr(comp, "interactions_"):
                raise ValueError(f"component {key!r} ({type(comp).__name__}) is not fitted")
        first = next(iter(components.values()))
        for key, comp in components.items():
            if not (comp.interactions_.product_ids.equals(first.interactions_.product_ids)
                    and comp.interactions_.user_ids.equals(first.interactions_.user_ids)):
                raise ValueError(f"component {key!r} was fitted on another user/product index than the others")
        self.dataset_ = first.dataset_
        self.interactions_ = first.interactions_
        weights = self.weights or self.dataset_.config.fusion
        missing = [s for s in STRATEGIES if s not in components and getattr(weights, s) > 0]
        if missing:
            raise ValueError(f"strategies {missing} have positive weight but no component; pass them or set weight 0")
        self.weights_ = weights
        self.components_ = {s: components[s] for s in STRATEGIES if s in components}
        self._prepare_rules(self.dataset_)

    def _prepare_rules(self, dataset: Dataset) -> None:
        """Per-product arrays for the business rules (computed once).

        ``allowed_`` has one row per spending tier plus a last row for users
        of unknown tier (no price filter); each row combines the stock rule
        and that tier's price rule."""
        products, cfg = dataset.products, dataset.config
        prices = products["price"].to_numpy(dtype=np.float64)
        self.category_codes_ = pd.Categorical(products["category"]).codes.astype(np.int64)
        self.in_stock_ = products["stock"].to_numpy() > 0
        tier_allowed = np.ones((len(cfg.spending_tiers), len(products)), dtype=bool)
        for t, tier in enumerate(cfg.spending_tiers):
            if tier.max_price_quantile >= 1.0:
                continue
            limit = products.groupby("category", observed=True)["price"].quantile(tier.max_price_quantile)
            tier_allowed[t] = prices <= products["category"].map(limit).to_numpy(dtype=np.float64) + 1e-9
        self.tier_allowed_ = tier_allowed
        tier_pos = {t.name: i for i, t in enumerate(cfg.spending_tiers)}
        tiers = dataset.users.set_index("user_id")["spending_tier"].reindex(self.interactions_.user_ids)
        self.user_tier_ = tiers.map(tier_pos).fillna(-1).to_numpy(dtype=np.int64)
        allowed = np.ones((len(cfg.spending_tiers) + 1, len(products)), dtype=bool)
        if self.config.spending_tier_filter:
            allowed[:-1] &= tier_allowed
        if self.config.exclude_out_of_stock:
            allowed &= self.in_stock_
        self.allowed_ = allowed

    # -- scoring --------------------------------------------------------------
    def effective_weights(self, user_ids: Sequence[str] | str) -> pd.DataFrame:
        """Per user, the weight each strategy gets after redistribution (step 2)."""
        self._check_fitted()
        ids = check_user_ids(user_ids)
        rows = self.interactions_.user_index(ids)
        blocks, hints = self._component_blocks(rows)
        weights = self._effective_weights(rows, blocks, hints=hints)
        frame = pd.DataFrame(weights, columns=list(STRATEGIES))
        frame.insert(0, "user_id", ids)
        return frame

    def _component_blocks(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray | None], dict[str, object]]:
        """Each strategy's float64 score block for ``rows`` (None: not built, the strategy answers
        from its hint) and its hint (:meth:`Recommender.score_block`; a k-NN model: :func:`_neighbour_block`)."""
        scored = {s: self._block(s, rows) for s in self.components_}
        return {s: b for s, (b, _) in scored.items()}, {s: h for s, (_, h) in scored.items()}

    def _block(self, name: str, rows: np.ndarray) -> tuple[np.ndarray | None, object]:
        comp = self.components_[name]
        return _neighbour_block(comp, rows) if isinstance(comp, NeighbourRecommender) else comp.score_block(rows)

    def has_history(self, rows: np.ndarray) -> np.ndarray:
        """True for known users with at least one interaction."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = np.diff(self.interactions_.matrix.indptr)
        return (rows >= 0) & (lengths[np.where(rows >= 0, rows, 0)] > 0)

    def _effective_weights(self, rows: np.ndarray, blocks: Mapping[str, np.ndarray | None],
                           floors: dict[str, np.ndarray] | None = None,
                           hints: Mapping[str, object] | None = None,
                           ranges: Mapping[str, tuple[np.ndarray, ...]] | None = None) -> np.ndarray:
        """Step 2's weights (rows x 4); ``floors``, if given, receives each block's raw row minimum.
        ``ranges``: strategies' ``(high, low, floor)`` already computed (the others are asked here)."""
        history = self.has_history(rows)
        base = np.array([getattr(self.weights_, s) for s in STRATEGIES])
        answers = np.zeros((len(rows), len(STRATEGIES)), dtype=bool)
        for j, s in enumerate(STRATEGIES):
            if s in blocks:
                if ranges is not None and s in ranges:
                    high, low, floor = ranges[s][:3]
                else:
                    hint = hints.get(s) if hints else None
                    high, low, floor = self.components_[s].score_range(rows, blocks[s], hint)  # over finite scores
                if floors is not None:
                    floors[s] = floor
                with np.errstate(invalid="ignore"):
                    answers[:, j] = np.nan_to_num(high - low, nan=0.0, posinf=0.0, neginf=0.0) > _EPS
                if s in self.config.history_strategies:
                    answers[:, j] &= history
        raw = answers * base
        total = raw.sum(axis=1, keepdims=True)
        equal = answers / np.maximum(answers.sum(axis=1, keepdims=True), 1)
        return np.where(total > 0, raw / np.where(total > 0, total, 1.0), equal)

    def _eligible(self, rows: np.ndarray, exclude_purchased: bool) -> np.ndarray:
        """Products passing the hard rules, per row (bool, rows x products)."""
        known = rows >= 0
        tiers = np.where(known, self.user_tier_[np.where(known, rows, 0)], -1)
        eligible = self.allowed_[np.where(tiers >= 0, tiers, len(self.allowed_) - 1)]
        if exclude_purchased:
            bought = take_rows(self.interactions_.purchased, rows)
            eligible[np.repeat(np.arange(len(rows)), np.diff(bought.indptr)), bought.indices] = False
        return eligible

    def fuse_rows(self, rows: np.ndarray, n: int, exclude_purchased: bool = True) -> FusedTopN:
        """The fused top-``n`` of interaction rows ``rows`` (-1 = unknown
        user), as arrays: the work behind :meth:`recommend` without pandas
        (the engine's single-user path)."""
        self._check_fitted()
        n = check_n(n, limit=len(self.interactions_.product_ids))
        rows = np.asarray(rows, dtype=np.int64)
        cand, valid, fused, contrib, blocks, weights = self._fuse(rows, n, exclude_purchased)
        pick = self._top(cand, valid, fused, n)  # positions into cand, -1 padding
        r, cols, score, rank, parts, strongest = fusion.assemble(pick, cand, fused, contrib)
        return FusedTopN(
            row=r, col=cols, score=score, rank=rank, contributions=parts,
            reason=self._reasons(rows, blocks, r, cols, strongest), weights=weights, component_scores=blocks,
        )

    def _fuse(self, rows: np.ndarray, n: int, exclude_purchased: bool) -> tuple:
        """Candidates as a padded matrix ``cand`` (rows x K column indices,
        sorted, ``valid`` marks real entries), their fused scores, the
        contributions (strategies x rows x K), the :class:`ComponentScores` and the weights."""
        return self._combine(rows, *self._nominate(rows, n, exclude_purchased))

    def _nominate(self, rows: np.ndarray, n: int, exclude_purchased: bool) -> tuple:
        """Steps 1-4 but the union: each strategy's block and hint, the effective weights and the
        strategies' top-``m`` (``tops``, ``oks``: one rows x m pair per nominating strategy)."""
        eligible = self._eligible(rows, exclude_purchased)
        n_rows, n_products = eligible.shape
        m = min(max(self.config.candidates_per_strategy, n), n_products)
        # a strategy with a positive weight gives its range and its top m in one visit of its block
        # (range_and_top), right after scoring it (the block is still in cache); the top of a row it
        # turns out not to answer is masked below
        blocks: dict[str, np.ndarray | None] = {}
        hints: dict[str, object] = {}
        ranged = {}
        for s in self.components_:
            blocks[s], hints[s] = self._block(s, rows)
            if getattr(self.weights_, s) > 0:
                ranged[s] = self.components_[s].range_and_top(rows, blocks[s], m, eligible, hints[s])
        floors: dict[str, np.ndarray] = {}
        weights = self._effective_weights(rows, blocks, floors, hints, ranged)
        tops, oks = [], []
        for j, s in enumerate(STRATEGIES):
            if s not in blocks or not (weights[:, j] > 0).any():
                continue
            if s in ranged:
                top, ok = ranged[s][3], ranged[s][4]
            else:
                top, ok = self.components_[s].top_candidates(rows, blocks[s], m, floors[s], eligible, hints[s])
            tops.append(top)
            oks.append(ok & (weights[:, j] > 0)[:, None])
        if not tops:
            tops, oks = [np.zeros((n_rows, 1), dtype=np.int64)], [np.zeros((n_rows, 1), dtype=bool)]
        return blocks, hints, weights, tops, oks, n_products

    def _combine(self, rows: np.ndarray, blocks: dict[str, np.ndarray | None], hints: dict[str, object],
                 weights: np.ndarray, tops: list[np.ndarray], oks: list[np.ndarray], n_products: int) -> tuple:
        """Steps 4-6 on the nominations of :meth:`_nominate`: union, raw scores at the candidates,
        normalisation, weighted sum (compiled: :mod:`recsys.models.fusion`)."""
        cand, valid = fusion.union(tops, oks, n_products)  # per row: sorted, distinct, valid entries first
        r = np.broadcast_to(np.arange(len(rows))[:, None], cand.shape)
        scores = ComponentScores(self.components_, rows, blocks, hints)
        raw = np.zeros((len(STRATEGIES), *cand.shape))
        present = np.array([s in blocks for s in STRATEGIES])
        for j, s in enumerate(STRATEGIES):
            if s in blocks:
                raw[j] = self.components_[s].scores_at(rows, r, cand, blocks[s], hints[s])  # k-NN: its sparse rows
                scores.at_candidates[s] = raw[j]
        if self.config.normalization == "minmax":
            contrib, fused = fusion.fuse_minmax(raw, present, weights, valid)
        else:
            contrib = np.zeros_like(raw)
            for j in np.flatnonzero(present):
                contrib[j] = weights[:, j][:, None] * self._normalize(raw[j], valid)
            fused = np.where(valid, contrib.sum(axis=0), -np.inf)
        return cand, valid, fused, contrib, scores, weights

    def _normalize(self, scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Step 5 over the ``mask`` entries (:func:`~recsys.models.fusion.normalize`, 0 elsewhere)."""
        return fusion.normalize(scores, mask, self.config.normalization)

    def score_users(self, rows: np.ndarray) -> np.ndarray:
        """Fused scores in [0, 1] (dense); ``-inf`` for products that are not
        candidates or fail a business rule (purchases excluded)."""
        self._check_fitted()
        rows = np.asarray(rows, dtype=np.int64)
        cand, valid, fused, *_ = self._fuse(rows, 1, exclude_purchased=True)
        out = np.full((len(rows), len(self.interactions_.product_ids)), -np.inf)
        r = np.repeat(np.arange(len(rows)), cand.shape[1]).reshape(cand.shape)
        out[r[valid], cand[valid]] = fused[valid]
        return out

    # -- top-n ----------------------------------------------------------------
    def recommend(
        self, user_ids: Sequence[str] | str, n: int = 10, exclude_purchased: bool = True
    ) -> pd.DataFrame:
        """Top-``n`` per user: :data:`RECOMMENDATION_COLUMNS` plus
        ``contrib_knn, contrib_svd, contrib_content, contrib_demographic``
        (they sum to ``score``). Fewer than ``n`` rows when fewer products are
        eligible."""
        n = check_n(n)
        ids = check_user_ids(user_ids)
        self._check_fitted()
        n = check_n(n, limit=len(self.interactions_.product_ids))
        rows = self.interactions_.user_index(ids)
        chunk = self.block_users()
        tops = []
        for start in range(0, max(len(ids), 1), chunk):
            top = self.fuse_rows(rows[start : start + chunk], n, exclude_purchased)
            tops.append((top.row + start, top.col, top.score, top.rank, top.reason, top.contributions))
        row, col, score, rank, reason, contributions = (np.concatenate(part) for part in zip(*tops, strict=True))
        frame = pd.DataFrame(
            {
                "user_id": np.asarray(ids, dtype=object)[row],
                "product_id": np.asarray(self.interactions_.product_ids, dtype=object)[col],
                "score": score,
                "rank": rank,
                "reason": reason,
            }
        )
        for j, name in enumerate(CONTRIB_COLUMNS):
            frame[name] = contributions[:, j]
        return frame

    def block_users(self) -> int:
        """Users per block in :meth:`recommend`: ``max_block_bytes // (8 * n_products)``, at most ``chunk_size``."""
        self._check_fitted()
        per_user = 8 * max(len(self.interactions_.product_ids), 1)
        return int(max(1, min(self.chunk_size, self.max_block_bytes // per_user)))

    def _top(self, cand: np.ndarray, valid: np.ndarray, fused: np.ndarray, n: int) -> np.ndarray:
        """Positions (into ``cand``) of the top ``n`` per row, -1 padding; ties
        by lower product column (``cand`` rows are column-sorted); with the
        category cap taken greedily down the ranking."""
        cap = self.config.category_cap
        if cap is None:
            return fusion.top_positions(fused, valid, n)
        return fusion.capped_top(fused, valid, self.category_codes_[cand], n, cap)

    def _reasons(self, rows: np.ndarray, blocks: ComponentScores, r: np.ndarray, c: np.ndarray,
                 strongest: np.ndarray) -> np.ndarray:
        reasons = np.empty(len(r), dtype=object)
        for j, s in enumerate(STRATEGIES):
            pick = strongest == j
            if not pick.any():
                continue
            comp = self.components_.get(s)
            if comp is None:
                reasons[pick] = self.reason
                continue
            reasons[pick] = comp.reasons_at(rows, r[pick], c[pick], blocks.raw(s))
        return reasons

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise RuntimeError("HybridRecommender is not fitted: call fit(dataset) or use from_fitted(...)")

    def describe(self) -> dict[str, object]:
        """Plain-dict summary of weights, rules and components."""
        self._check_fitted()
        return {
            "weights": {s: float(getattr(self.weights_, s)) for s in STRATEGIES},
            "components": {s: type(c).__name__ for s, c in self.components_.items()},
            "candidates_per_strategy": self.config.candidates_per_strategy,
            "normalization": self.config.normalization,
            "category_cap": self.config.category_cap,
            "exclude_out_of_stock": self.config.exclude_out_of_stock,
            "spending_tier_filter": self.config.spending_tier_filter,
            "history_strategies": list(self.config.history_strategies),
        }
