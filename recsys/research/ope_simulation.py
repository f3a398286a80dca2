"""Off-policy estimators graded against the truth on the synthetic world.

The world: every user with deals, and the products the formula's generator
chose for them (as in :mod:`recsys.deals.response`, policies differ only in
the discount). The purchase model of :class:`~recsys.deals.response.ResponseModel`
gives each offer's purchase probability at any discount, so the **true**
value of any policy is known: per user, ``sum_offers p(d) x reward(d)`` with
``reward`` = 1 (conversions), the deal price (revenue) or deal price - cost
(margin), averaged over users.

A log of ``n`` visits: ``n`` users drawn uniformly with replacement; visit
``v`` is period ``v`` of the :class:`~recsys.deals.exploration.LoggingPolicy`
(formula + exploration + holdout, salt per replicate), so every visit draws
its arm and discounts afresh; each offer is bought with probability ``p(d)``
(a Bernoulli draw). Units of the estimators and of the bootstrap are visits.

Target policies (:data:`TARGETS`), each a discount per offer:
``no_deals`` (0, what the holdout gets); ``uniform_15`` (the feasible
exploration level nearest 15 %); ``seed_formula`` (the formula, the logging
policy's own default action); ``formula_price_sensitivity`` (the formula
with the sensitivity factor, at the nearest feasible level);
``margin_seeking`` (the feasible level of highest expected margin under the
purchase model: a policy a shop would pick with a good model of its
customers). Targets other than the formula act on the exploration grid, so
the log supports them (``mu > 0`` wherever the target acts).

The direct method's reward model: a logistic regression of purchase on
(affinity percentile, discount, price sensitivity) fitted on the log, with
main effects only: the true model's ``sensitivity x discount`` interaction is
left out, as a shop's first model would, so DM is biased by design and DR's
correction shows. Revenue and margin models are ``p_hat x price`` terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.deals.exploration import ExplorationConfig, LoggingPolicy
from recsys.deals.response import ResponseModel
from recsys.evaluation.off_policy import ESTIMATORS

__all__ = ["METRICS", "TARGETS", "OfferWorld", "estimate_all", "grade", "simulate_experiment", "simulate_log",
           "summarise_grades"]

TARGETS: tuple[str, ...] = ("no_deals", "uniform_15", "seed_formula", "formula_price_sensitivity", "margin_seeking")
METRICS: tuple[str, ...] = ("conversions", "revenue", "margin")


@dataclass
class OfferWorld:
    """Offers of every user with deals, the logging policy and the truth
    (module docstring). Offer arrays are grouped by user (``starts``)."""

    users: np.ndarray
    starts: np.ndarray
    offers: pd.DataFrame
    policy: LoggingPolicy
    model: ResponseModel
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, seed_deals: pd.DataFrame, sensitivity_deals: pd.DataFrame, users: pd.DataFrame,
              exploration: ExplorationConfig, config: RecsysConfig = DEFAULT_CONFIG,
              model: ResponseModel | None = None, uniform_discount: float = 0.15) -> OfferWorld:
        """From the deals of the formula without and with price sensitivity
        (same (user, product) pairs) and ``users`` (``user_id, region,
        price_sensitivity``)."""
        keys = ["user_id", "product_id"]
        a = seed_deals.sort_values(keys, kind="stable").reset_index(drop=True)
        b = sensitivity_deals.sort_values(keys, kind="stable").reset_index(drop=True)
        if not a[keys].equals(b[keys]):
            raise ValueError("seed_deals and sensitivity_deals must offer the same (user, product) pairs")
        if not exploration.enabled:
            raise ValueError("the simulation needs a logging policy with exploration enabled")
        profile = users.set_index("user_id")
        missing = pd.Index(a["user_id"].unique()).difference(profile.index)
        if len(missing):
            raise ValueError(f"users lacks {len(missing)} user ids of the deals, e.g. {list(missing[:3])}")
        fallback = profile["region"].map(lambda r: config.region(r).price_sensitivity)
        sens = profile["price_sensitivity"].astype(float).fillna(fallback)
        offers = pd.DataFrame({
            "user_id": a["user_id"].to_numpy(dtype=object), "product_id": a["product_id"].to_numpy(dtype=object),
            "price": a["original_price"].to_numpy(float), "cost": a["cost"].to_numpy(float),
            "floor": a["margin_floor"].to_numpy(float),
            "affinity_pct": np.nan_to_num(a["affinity_pct"].to_numpy(float), nan=0.5),
            "sensitivity": sens.reindex(a["user_id"]).to_numpy(float),
            "formula": a["discount_percentage"].to_numpy(float) / 100.0,
            "formula_ps": b["discount_percentage"].to_numpy(float) / 100.0,
        })
        offers["max_feasible"] = 1.0 - offers["floor"] / offers["price"]
        codes, uniques = pd.factorize(offers["user_id"])
        starts = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, len(codes)]
        world = cls(np.asarray(uniques, dtype=object), starts, offers, LoggingPolicy(exploration, config.deals),
                    model or ResponseModel())
        world.targets = world._targets(uniform_discount)
        return world

    # -- prices, probabilities, rewards -------------------------------------------------
    def deal_price(self, discount: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """List price at discount 0 (no deal), else ``max(price (1 - d), floor)``."""
        price = self.offers["price"].to_numpy()[rows]
        floor = self.offers["floor"].to_numpy()[rows]
        return np.where(discount <= 0, price, np.maximum(price * (1.0 - discount), floor))

    def purchase_probability(self, discount: np.ndarray, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.model.probability(discount, self.offers["sensitivity"].to_numpy()[rows],
                                      self.offers["affinity_pct"].to_numpy()[rows])

    def rewards(self, bought: np.ndarray, discount: np.ndarray,
                rows: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """Per metric, the reward of a purchase indicator (or probability) at ``discount``."""
        price = self.deal_price(discount, rows)
        return {"conversions": bought, "revenue": bought * price,
                "margin": bought * (price - self.offers["cost"].to_numpy()[rows])}

    def _targets(self, uniform_discount: float) -> dict[str, np.ndarray]:
        o = self.offers
        f, top = o["formula"].to_numpy(), o["max_feasible"].to_numpy()
        mask = self.policy.explore_mask(f, top)
        levels = self.policy.levels

        def snap(d: np.ndarray) -> np.ndarray:
            distance = np.where(mask, np.abs(levels[None, :] - d[:, None]), np.inf)
            return np.where(mask.any(axis=1), levels[distance.argmin(axis=1)], f)

        margins = np.column_stack([self.rewards(self.purchase_probability(np.full(len(o), lv)), np.full(len(o), lv))
                                   ["margin"] for lv in levels])
        best = np.where(mask, margins, -np.inf).argmax(axis=1)
        return {
            "no_deals": np.zeros(len(o)),
            "uniform_15": snap(np.full(len(o), uniform_discount)),
            "seed_formula": f.copy(),
            "formula_price_sensitivity": snap(o["formula_ps"].to_numpy()),
            "margin_seeking": np.where(mask.any(axis=1), levels[best], f),
        }

    def per_user(self, values: np.ndarray) -> np.ndarray:
        """Per-user sums of a per-offer array."""
        return np.add.reduceat(values, self.starts[:-1]) if len(values) else np.zeros(0)

    def true_values(self) -> pd.DataFrame:
        """``policy, metric, value`` (mean per user); ``logging`` is the
        logging policy itself and ``deals_arm`` its non-holdout part."""
        rows = []
        for name, d in self.targets.items():
            for metric, r in self.rewards(self.purchase_probability(d), d).items():
                rows.append({"policy": name, "metric": metric, "value": float(self.per_user(r).mean())})
        deals_arm = self._deals_arm_expectation()
        h = self.policy.config.holdout_share
        none = {m: v for m, v in self._expected(self.targets["no_deals"]).items()}
        for metric in METRICS:
            rows.append({"policy": "deals_arm", "metric": metric, "value": deals_arm[metric]})
            rows.append({"policy": "logging", "metric": metric, "value": h * none[metric] + (1 - h) * deals_arm[metric]})
        return pd.DataFrame(rows)

    def _expected(self, d: np.ndarray) -> dict[str, float]:
        return {m: float(self.per_user(r).mean()) for m, r in self.rewards(self.purchase_probability(d), d).items()}

    def _deals_arm_expectation(self) -> dict[str, float]:
        """Expected value per user given not held out: ``(1-eps') r(f) + eps' mean_E r(l)``."""
        o = self.offers
        f, top = o["formula"].to_numpy(), o["max_feasible"].to_numpy()
        mask = self.policy.explore_mask(f, top)
        size = mask.sum(axis=1)
        eps = np.where(size > 0, self.policy.config.epsilon, 0.0)
        total = {m: (1 - eps) * r for m, r in self.rewards(self.purchase_probability(f), f).items()}
        for j, lv in enumerate(self.policy.levels):
            d = np.full(len(o), lv)
            share = eps * mask[:, j] / np.maximum(size, 1)
            for m, r in self.rewards(self.purchase_probability(d), d).items():
                total[m] = total[m] + share * r
        return {m: float(self.per_user(v).mean()) for m, v in total.items()}


def simulate_log(world: OfferWorld, n_visits: int, seed: int) -> pd.DataFrame:
    """A log of ``n_visits`` visits (module docstring): one row per offer with
    ``visit, row`` (offer index), ``arm, discount, propensity``, the Bernoulli
    ``bought`` and the realised rewards of :data:`METRICS`."""
    if n_visits < 1:
        raise ValueError(f"n_visits must be >= 1, got {n_visits}")
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(world.users), n_visits)
    lengths = np.diff(world.starts)[picked]
    visit = np.repeat(np.arange(n_visits), lengths)
    first = np.repeat(world.starts[picked], lengths)
    rows = first + np.arange(len(visit)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    o = world.offers
    policy = LoggingPolicy(replace(world.policy.config, salt=f"simulation-{seed}"), world.policy.deals)
    decided = policy.decide(o["user_id"].to_numpy()[rows], o["product_id"].to_numpy()[rows],
                            o["formula"].to_numpy()[rows], o["max_feasible"].to_numpy()[rows], visit)
    p = world.purchase_probability(decided["discount"], rows)
    bought = (rng.random(len(rows)) < p).astype(float)
    log = pd.DataFrame({"visit": visit, "row": rows, "arm": decided["arm"], "discount": decided["discount"],
                        "propensity": decided["propensity"], "bought": bought})
    for metric, r in world.rewards(bought, decided["discount"], rows).items():
        log[metric] = r
    return log


def simulate_experiment(world: OfferWorld, variants: dict[str, str], n_visits: int, seed: int,
                        salt: str = "experiment") -> pd.DataFrame:
    """An A/B experiment on the synthetic world: ``n_visits`` visits of users
    drawn uniformly; each user is in variant ``k`` by a hash of (salt, user)
    with equal shares (:class:`~recsys.deals.experiment.ExperimentConfig`),
    and every offer of the visit gets the discount of the variant's target
    policy (``variants``: variant name -> a name of :data:`TARGETS`), bought
    with the purchase model's probability. Returns outcome rows as
    :func:`~recsys.deals.decision_log.join_outcomes` gives them (``user_id,
    period, variant, arm, converted, revenue, margin``) for
    :func:`~recsys.research.experiment_report.experiment_report`."""
    from recsys.deals.experiment import ExperimentConfig, Variant

    unknown = [t for t in variants.values() if t not in world.targets]
    if unknown:
        raise ValueError(f"unknown target policies {unknown}; known: {list(world.targets)}")
    experiment = ExperimentConfig("simulated", tuple(Variant(name, 1 / len(variants)) for name in variants), salt)
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(world.users), n_visits)
    lengths = np.diff(world.starts)[picked]
    visit = np.repeat(np.arange(n_visits), lengths)
    rows = np.repeat(world.starts[picked], lengths) + np.arange(len(visit)) - np.repeat(np.cumsum(lengths) - lengths,
                                                                                       lengths)
    users = world.offers["user_id"].to_numpy()[rows]
    variant = experiment.assign(users)
    discount = np.zeros(len(rows))
    for name, target in variants.items():
        here = variant == name
        discount[here] = world.targets[target][rows[here]]
    bought = (rng.random(len(rows)) < world.purchase_probability(discount, rows)).astype(float)
    rewards = world.rewards(bought, discount, rows)
    return pd.DataFrame({"user_id": users, "period": visit, "variant": variant, "arm": "formula",
                         "converted": bought, "revenue": rewards["revenue"], "margin": rewards["margin"]})


def _reward_model(world: OfferWorld, log: pd.DataFrame) -> LogisticRegression:
    """DM's purchase model (main effects; module docstring)."""
    x = _features(world, log["discount"].to_numpy(), log["row"].to_numpy())
    y = log["bought"].to_numpy()
    if y.min() == y.max():  # one class only (a tiny log): a constant model
        y = y.copy()
        y[0] = 1 - y[0]
    return LogisticRegression(C=1e6, max_iter=1000).fit(x, y)


def _features(world: OfferWorld, discount: np.ndarray, rows: np.ndarray) -> np.ndarray:
    o = world.offers
    return np.column_stack([o["affinity_pct"].to_numpy()[rows], discount, o["sensitivity"].to_numpy()[rows]])


def _counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot x n`` multiplicities of each unit in each percentile-bootstrap resample."""
    idx = rng.integers(0, n, size=(n_boot, n)) + np.arange(n_boot)[:, None] * n
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def estimate_all(world: OfferWorld, log: pd.DataFrame, n_boot: int = 200, confidence: float = 0.95,
                 seed: int = 0, targets: Sequence[str] = TARGETS) -> pd.DataFrame:
    """IPS, SNIPS, DM and DR (:mod:`recsys.evaluation.off_policy`) of every
    target and metric on one log, with percentile bootstrap intervals over
    visits (one set of resamples for all): ``target, metric, estimator,
    estimate, ci_low, ci_high``."""
    rows, visit = log["row"].to_numpy(), log["visit"].to_numpy()
    n_units = int(visit.max()) + 1
    d_log, mu = log["discount"].to_numpy(), log["propensity"].to_numpy()
    model = _reward_model(world, log)
    p_log = model.predict_proba(_features(world, d_log, rows))[:, 1]
    q_log = world.rewards(p_log, d_log, rows)
    columns, labels = [], []
    for target in targets:
        t = world.targets[target][rows]
        w = (np.abs(d_log - t) <= 1e-9) / mu
        q_t = world.rewards(model.predict_proba(_features(world, t, rows))[:, 1], t, rows)
        for metric in METRICS:
            r = log[metric].to_numpy()
            terms = {"IPS": w * r, "DM": q_t[metric], "DR": q_t[metric] + w * (r - q_log[metric]),
                     "SNIPS_num": w * r, "SNIPS_den": w}
            for name, values in terms.items():
                columns.append(np.bincount(visit, weights=values, minlength=n_units))
                labels.append((target, metric, name))
    z = np.column_stack(columns + [np.bincount(visit, minlength=n_units).astype(float)])
    point = z.sum(axis=0)
    boot = _counts(n_units, n_boot, np.random.default_rng(seed)) @ z
    alpha = 1 - confidence
    out, index = [], {label: k for k, label in enumerate(labels)}
    for target in targets:
        for metric in METRICS:
            for estimator in ESTIMATORS:
                if estimator == "SNIPS":
                    num, den = index[(target, metric, "SNIPS_num")], index[(target, metric, "SNIPS_den")]
                    with np.errstate(invalid="ignore", divide="ignore"):
                        value = point[num] / point[den] * point[-1] / n_units
                        stats = boot[:, num] / boot[:, den] * boot[:, -1] / n_units
                else:
                    k = index[(target, metric, estimator)]
                    value, stats = point[k] / n_units, boot[:, k] / n_units
                stats = stats[np.isfinite(stats)]
                low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2]) if stats.size else (np.nan, np.nan)
                out.append({"target": target, "metric": metric, "estimator": estimator,
                            "estimate": float(value), "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(out)


def grade(world: OfferWorld, log_sizes: Sequence[int], n_reps: int, n_boot: int = 200, confidence: float = 0.95,
          seed: int = 0) -> pd.DataFrame:
    """Every estimate of :func:`estimate_all` on ``n_reps`` simulated logs of
    each size, with the truth: ``n_visits, rep`` + its columns + ``truth,
    covered``."""
    truth = world.true_values().set_index(["policy", "metric"])["value"]
    frames = []
    for n in log_sizes:
        for rep in range(n_reps):
            rep_seed = int(np.random.SeedSequence([seed, int(n), rep]).generate_state(1)[0])
            log = simulate_log(world, int(n), rep_seed)
            table = estimate_all(world, log, n_boot, confidence, seed=rep_seed)
            table.insert(0, "rep", rep)
            table.insert(0, "n_visits", int(n))
            frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out["truth"] = truth.reindex(pd.MultiIndex.from_frame(out[["target", "metric"]])).to_numpy()
    out["covered"] = (out["ci_low"] <= out["truth"]) & (out["truth"] <= out["ci_high"])
    return out


def summarise_grades(grades: pd.DataFrame) -> pd.DataFrame:
    """Per ``n_visits, target, metric, estimator``: ``truth, mean_estimate,
    bias, rmse, relative_rmse`` (over the truth), ``coverage`` (share of
    intervals holding the truth) and ``mean_width``, over the replicates."""
    g = grades.assign(error=grades["estimate"] - grades["truth"], width=grades["ci_high"] - grades["ci_low"])
    keys = ["n_visits", "target", "metric", "estimator"]
    out = g.groupby(keys, sort=False).agg(
        truth=("truth", "first"), mean_estimate=("estimate", "mean"), bias=("error", "mean"),
        rmse=("error", lambda e: float(np.sqrt(np.mean(np.square(e))))), coverage=("covered", "mean"),
        mean_width=("width", "mean"), reps=("rep", "nunique")).reset_index()
    out["relative_rmse"] = out["rmse"] / out["truth"].abs()
    return out
