"""The collaborative slot, chosen before the weight search: each candidate model alone on the validation window.

Candidates (:func:`slot_candidates`): PureSVD with the current settings
(Stage 2's model, the default), EASE at ``l2`` in :data:`EASE_L2` (only where
the engine serves it, ``TuningConfig.search_ease``) and RP3beta at the
``(alpha, beta)`` of :data:`RP3_GRID` (``TuningConfig.search_rp3beta``). Each
is scored *alone* (weight 1 on the slot) on the tuner's validation users and
window (:class:`~recsys.research.tuning._Validation`; the test window is never
read). Rule: the candidate with the highest mean replaces PureSVD only when
the 95 % paired bootstrap interval of its gain over PureSVD lies above zero
(the same step rule as :mod:`recsys.research.selection`).

Why a separate stage: in one joint TPE search of 24 trials the slot's
categorical choice and its parameters compete with 15 other dimensions, and
a slot model rarely gets a trial with good weights; scored alone, each slot
model is compared on equal terms in a few fits.
"""

from __future__ import annotations

from typing import Any

from recsys.config import FusionWeights

__all__ = ["EASE_L2", "RP3_GRID", "choose_slot", "slot_candidates"]

EASE_L2 = (100.0, 500.0, 2000.0)
RP3_GRID = ((1.0, 0.3), (1.0, 0.5), (1.0, 0.7), (0.8, 0.5))
ALONE = FusionWeights(knn=0.0, svd=1.0, content=0.0, demographic=0.0)


def slot_candidates(search_ease: bool, search_rp3beta: bool) -> dict[str, Any]:
    """Label -> the slot's configuration (None: PureSVD)."""
    from recsys.models.ease import EASEConfig
    from recsys.models.rp3beta import RP3betaConfig

    out: dict[str, Any] = {"pure_svd": None}
    if search_ease:
        out.update({f"ease[l2={l2:g}]": EASEConfig(l2=l2) for l2 in EASE_L2})
    if search_rp3beta:
        out.update({f"rp3beta[a={a:g},b={b:g}]": RP3betaConfig(alpha=a, beta=b) for a, b in RP3_GRID})
    return out


def choose_slot(problem: Any, knn: Any, svd: Any, search_ease: bool, search_rp3beta: bool,
                n_boot: int = 1000) -> dict[str, Any]:
    """The slot by the module's rule on ``problem`` (the tuner's validation problem): ``model``
    (``pure_svd``, ``ease``, ``rp3beta``), ``config`` (None for PureSVD), each candidate's
    validation mean (``scores``) and the paired interval of the best alternative over PureSVD."""
    from recsys.research.selection import step_up

    candidates = slot_candidates(search_ease, search_rp3beta)
    per_user = {label: problem.per_user(knn, svd, ALONE, cfg) for label, cfg in candidates.items()}
    scores = {label: float(v.mean()) for label, v in per_user.items()}
    best = max(scores, key=lambda label: (scores[label], label == "pure_svd"))
    record: dict[str, Any] = {"rule": "best alone on validation; replaces PureSVD only when the paired 95% "
                              "interval of its gain is above zero", "scores": scores, "best": best}
    chosen = "pure_svd"
    if best != "pure_svd":
        record["best_vs_pure_svd"] = step_up(per_user["pure_svd"], per_user[best], n_boot, problem.config.seed)
        if record["best_vs_pure_svd"]["above_zero"]:
            chosen = best
    config = candidates[chosen]
    record.update(chosen=chosen, model=chosen.split("[", 1)[0], config=config)
    return record
