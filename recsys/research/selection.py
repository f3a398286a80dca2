"""What the engine serves after a search: the simplest fusion the validation window cannot reject.

Candidates, from the simplest (:data:`CANDIDATES`): ``design`` (the design's
fixed 40/30/20/10 weights, nothing fitted), ``tuned`` (the search's four
weights) and ``learned`` (a LambdaRank ranker over the strategies' scores,
:mod:`recsys.models.learned_fusion`). All three fuse the same strategies,
with the settings the search chose (k-NN, and PureSVD, EASE or RP3beta in
the collaborative slot).

Protocol (:func:`choose_served`, nested windows, the test window never read):
the strategies are fitted on the data before the validation window
``[as_of - d, as_of)`` of the training data; the ranker is trained on the
window before that (``[as_of - 2d, as_of - d)``); each candidate's
``metric@k`` is measured per validation user (the search's users).

Rule (a one-standard-error-style rule, stated with a paired bootstrap): start
from ``design``; move to the next, more complex candidate only when the 95 %
paired bootstrap interval of its validation gain over the current choice
lies above zero (``ci_low > 0``). A gain that could be noise keeps the
simpler model: the tuned weights were chosen as the best of many trials on
this same window, so their validation gain is optimistic, and a ranker
trained on one window may not carry over to the next. The ``learned``
candidate re-ranks the candidates of the current choice's weights.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from recsys.config import FusionWeights
from recsys.data.dataset import Dataset

__all__ = ["CANDIDATES", "choose_served", "step_up"]

CANDIDATES = ("design", "tuned", "learned")


def step_up(current: pd.Series, challenger: pd.Series, n_boot: int, seed: int) -> dict[str, Any]:
    """The paired bootstrap of ``challenger - current`` (per-user values) and whether it is above zero."""
    from recsys.evaluation.statistics import paired_bootstrap

    d = paired_bootstrap(challenger, current, n_boot, 0.95, seed)
    return {"difference": d.difference, "ci_low": d.ci_low, "ci_high": d.ci_high, "above_zero": bool(d.ci_low > 0)}


def choose_served(dataset: Dataset, engine_config: Any, tuned: FusionWeights, design: FusionWeights,
                  config: Any, n_boot: int = 1000) -> dict[str, Any]:
    """The served fusion by the module's rule on the validation window of ``dataset`` (``config``: the
    :class:`~recsys.research.tuning.TuningConfig`; ``engine_config``: the searched strategy settings).
    Returns the record: each candidate's validation mean, each step's paired interval, ``chosen`` and its
    ``weights``."""
    from recsys.evaluation import metrics as M
    from recsys.evaluation.comparison import sample_users
    from recsys.evaluation.split import validation_split
    from recsys.models.hybrid import HybridRecommender
    from recsys.models.learned_fusion import LearnedFusion, LearnedFusionConfig, train_ranker
    from recsys.research.fusion_study import served_parts_on

    kinds = config.relevant_events or tuple(
        t for t in ("purchase", "cart") if t in set(dataset.events["event_type"].unique())) or ("purchase",)
    split = validation_split(dataset, config.validation_days, relevant_events=kinds)
    users = sample_users(split.warm_users, config.max_users, config.seed)
    relevant = split.relevant[split.relevant["user_id"].isin(users)]
    parts_on = served_parts_on(engine_config)
    parts = parts_on(split.train)

    def per_user(model: Any) -> pd.Series:
        recs = model.recommend(users, n=config.k)[["user_id", "product_id", "rank"]]
        values = M.ranking_metrics_per_user(recs, relevant, config.k)[config.metric]
        return values.reindex(pd.Index(users)).fillna(0.0)

    values = {"design": per_user(HybridRecommender.from_fitted(parts, design, engine_config.hybrid))}
    chosen, weights = "design", design
    record: dict[str, Any] = {"metric": f"{config.metric}@{config.k}", "validation_cut": str(split.cut),
                              "users": len(users), "rule": "step up only when the paired 95% interval of the "
                              "validation gain is above zero", "steps": {}}
    if tuned != design:
        values["tuned"] = per_user(HybridRecommender.from_fitted(parts, tuned, engine_config.hybrid))
        record["steps"]["tuned_vs_design"] = step_up(values["design"], values["tuned"], n_boot, config.seed)
        if record["steps"]["tuned_vs_design"]["above_zero"]:
            chosen, weights = "tuned", tuned
    if config.learned_fusion:
        fusion = LearnedFusionConfig(seed=config.seed, validation_days=float(config.validation_days))
        ranker = train_ranker(split.train, parts_on, weights, engine_config.hybrid, fusion, kinds)
        values["learned"] = per_user(LearnedFusion.from_fitted(parts, weights, engine_config.hybrid,
                                                               model=ranker.model))
        step = step_up(values[chosen], values["learned"], n_boot, config.seed)
        record["steps"][f"learned_vs_{chosen}"] = step
        record.update(ranker_cut=ranker.cut, ranker_queries=ranker.queries)
        if step["above_zero"]:
            chosen = "learned"
    record.update({name: float(v.mean()) for name, v in values.items()})
    record.update(chosen=chosen, weights=weights.as_dict())
    return record
