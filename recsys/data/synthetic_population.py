"""The population of the synthetic world (:mod:`recsys.data.synthetic`): users and products.

:func:`make_users` draws each user's hidden persona, age, region, spending
tier, price sensitivity (persona, region and age group mixed, plus noise),
category preferences, latent taste, session rate and active window;
:func:`make_products` draws each product's category, vocabulary (sub-type,
brand, material, features), price and cost, stock, peak season, latent
vector, popularity, trend and launch day. The formulas are in the
docstring of :mod:`recsys.data.synthetic`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.config import RecsysConfig
from recsys.data.world import CATEGORY_MEDIAN_PRICE, Persona, vocabulary_for

__all__ = ["Products", "Users", "make_products", "make_users", "sample_rows", "string_column"]

_CATEGORY_SHARE = {"Books": 1.3, "Fashion": 1.3, "Electronics": 1.2, "Home & Garden": 1.1, "Travel": 0.6,
                   "Automotive": 0.8}


_TIER_SENSITIVITY_SHIFT = np.array([0.07, 0.0, -0.07])


def string_column(values: np.ndarray) -> pd.Series:
    """An object-dtype column that shares the string objects of ``values``
    (pandas 3 would otherwise convert to its ``str`` dtype, and ``Dataset``
    back to object, materialising one Python string per row)."""
    return pd.Series(np.asarray(values, dtype=object), dtype=object, copy=False)


def _title(text: str) -> str:
    """Capitalise each word's first letter only ("RPG game" -> "RPG Game")."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split())


def sample_rows(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row of ``probs`` (rows need not be normalised)."""
    cdf = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cdf[:, -1]
    return np.minimum((u[:, None] >= cdf).sum(axis=1), probs.shape[1] - 1)


@dataclass
class Users:
    persona: np.ndarray
    age: np.ndarray
    region: np.ndarray
    tier: np.ndarray
    sensitivity: np.ndarray
    preference: np.ndarray  # n_users x n_categories, rows sum to 1
    taste: np.ndarray  # n_users x latent_dim
    rate: np.ndarray  # sessions per day while active
    join_day: np.ndarray  # first active day
    leave_day: np.ndarray  # last active day


@dataclass
class Products:
    frame: pd.DataFrame
    category: np.ndarray
    price: np.ndarray
    price_z: np.ndarray
    latent: np.ndarray
    popularity: np.ndarray
    trend: np.ndarray
    launch_day: np.ndarray
    peak: np.ndarray  # season index, -1 for none


def make_users(rng: np.random.Generator, n_users: int, days: int, personas: Sequence[Persona],
                centroids: np.ndarray, activity: float, config: RecsysConfig) -> Users:
    categories, regions = config.categories, config.region_names
    weights = np.array([p.weight for p in personas])
    persona = rng.choice(len(personas), size=n_users, p=weights / weights.sum())

    age_mean = np.array([p.age_mean for p in personas])[persona]
    age_sd = np.array([p.age_sd for p in personas])[persona]
    age = np.clip(np.rint(rng.normal(age_mean, age_sd)), 16, 90)

    tilt = np.array([[p.region_tilt.get(r, 1.0) for r in regions] for p in personas])
    region = sample_rows(rng, tilt[persona])
    tier = sample_rows(rng, np.array([p.tier_probs for p in personas])[persona])

    group_names = list(config.age_group_names)
    group = np.array([group_names.index(g) for g in config.age_groups_of(pd.Series(age))])
    region_ps = np.array([config.region(r).price_sensitivity for r in regions])
    group_ps = np.array([g.price_sensitivity for g in config.age_groups])
    persona_ps = np.array([p.price_sensitivity for p in personas])
    sensitivity = (0.5 * persona_ps[persona] + 0.25 * region_ps[region] + 0.25 * group_ps[group]
                   + _TIER_SENSITIVITY_SHIFT[tier] + rng.normal(0.0, 0.07, n_users))
    sensitivity = np.round(np.clip(sensitivity, 0.3, 0.9), 3)

    persona_w = np.array([[p.categories.get(c, 0.0) + 0.02 for c in categories] for p in personas])
    region_cat = np.array([[c in config.region(r).categories for c in categories] for r in regions], dtype=float)
    group_cat = np.array([[c in g.categories for c in categories] for g in config.age_groups], dtype=float)
    logits = (np.log(persona_w[persona]) + 0.5 * region_cat[region] + 0.4 * group_cat[group]
              + rng.normal(0.0, 0.5, (n_users, len(categories))))
    preference = np.exp(logits - logits.max(axis=1, keepdims=True))
    preference /= preference.sum(axis=1, keepdims=True)

    taste = centroids[persona] + rng.normal(0.0, 0.8, (n_users, centroids.shape[1]))
    per_month = np.array([p.sessions_per_month for p in personas])[persona]
    rate = per_month / 30.0 * activity * rng.lognormal(-0.5 * 0.6**2, 0.6, n_users)
    # Active window: 75% are customers from the start, the rest join during
    # the window; 20% churn (leave) at a uniform day after joining.
    join_day = np.where(rng.random(n_users) < 0.75, 0, rng.integers(0, days, n_users))
    leave_day = np.where(rng.random(n_users) < 0.2, join_day + (rng.random(n_users) * (days - join_day)).astype(int),
                         days - 1)
    return Users(persona, age, region, tier, sensitivity, preference, taste, rate, join_day, leave_day)


def make_products(rng: np.random.Generator, n_products: int, days: int, latent_dim: int,
                   config: RecsysConfig) -> Products:
    categories = config.categories
    n_cat = len(categories)
    share = np.array([_CATEGORY_SHARE.get(c, 1.0) for c in categories])
    category = np.concatenate([np.arange(n_cat), rng.choice(n_cat, n_products - n_cat, p=share / share.sum())])
    category = rng.permutation(category)
    vocab = [vocabulary_for(c) for c in categories]

    def pick(sizes: list[int]) -> np.ndarray:
        return (rng.random(n_products) * np.array(sizes)[category]).astype(np.int64)

    subtype = pick([len(v.subtypes) for v in vocab])
    brand = pick([len(v.brands) for v in vocab])
    material = pick([len(v.materials) for v in vocab])
    n_features = np.array([len(v.features) for v in vocab])[category]
    feature1 = (rng.random(n_products) * n_features).astype(np.int64)
    feature2 = (feature1 + 1 + (rng.random(n_products) * (n_features - 1)).astype(np.int64)) % n_features
    pitch = pick([len(v.pitch) for v in vocab])
    model = rng.integers(100, 1000, n_products)
    letters = np.array(list("ABCDEFGHKLMPRSTVXZ"))[rng.integers(0, 18, n_products)]
    extra = rng.random(n_products)

    median = np.array([CATEGORY_MEDIAN_PRICE.get(c, 40.0) for c in categories])[category]
    sub_factor = np.array([vocab[c].subtypes[s].price_factor for c, s in zip(category, subtype, strict=True)])
    brand_level = np.array([np.linspace(0.75, 1.4, len(v.brands)) for v in vocab], dtype=object)
    brand_factor = np.array([brand_level[c][b] for c, b in zip(category, brand, strict=True)])
    price = np.round(np.maximum(median * sub_factor * brand_factor * rng.lognormal(0.0, 0.35, n_products), 0.99), 2)
    cost = np.round(price * rng.uniform(0.35, 0.75, n_products), 2)
    cost = np.clip(cost, 0.01, price - 0.01)
    stock = np.where(rng.random(n_products) < 0.05, 0, rng.negative_binomial(2, 0.04, n_products) + 1)

    seasons = list(config.seasons.month_to_season.values())
    season_order = list(dict.fromkeys(["winter", "spring", "summer", "autumn"] + seasons))
    generic = ("Free delivery.", "Customer favourite.", "New arrival.", "Great value.", "A perfect gift.")
    names, descriptions, tags, peaks = [], [], [], []
    for i in range(n_products):
        v, c = vocab[category[i]], categories[category[i]]
        sub = v.subtypes[subtype[i]]
        f1, f2 = v.features[feature1[i]], v.features[feature2[i]]
        mat, brand_name = v.materials[material[i]], v.brands[brand[i]]
        names.append(f"{brand_name} {_title(sub.noun)} {letters[i]}{model[i]}")
        text = f"{brand_name} {sub.noun} in {mat}. Features: {f1}, {f2}. {v.pitch[pitch[i]]}"
        if extra[i] < 0.5:
            text += " " + generic[int(extra[i] * 10)]
        descriptions.append(text)
        tags.append("|".join(dict.fromkeys([c.lower(), sub.noun, f1, f2, mat])))
        peaks.append(sub.peak_season)
    peak = np.array([season_order.index(s) if s in season_order else -1 for s in peaks])

    n_sub = max(len(v.subtypes) for v in vocab)
    subtype_vec = rng.normal(0.0, 1.0 / math.sqrt(latent_dim), (n_cat, n_sub, latent_dim))
    latent = subtype_vec[category, subtype] + rng.normal(0.0, 0.7 / math.sqrt(latent_dim), (n_products, latent_dim))
    popularity = rng.lognormal(0.0, 1.0, n_products)
    trend = rng.normal(0.0, 0.8, n_products)
    launch_day = np.where(rng.random(n_products) < 0.15, rng.integers(0, days, n_products), 0)

    log_price = np.log(price)
    price_z = np.zeros(n_products)
    for c in range(n_cat):
        members = category == c
        sd = log_price[members].std()
        price_z[members] = (log_price[members] - log_price[members].mean()) / (sd if sd > 0 else 1.0)

    frame = pd.DataFrame({
        "product_id": string_column([f"product_{i}" for i in range(n_products)]),
        "name": string_column(names),
        "category": string_column(np.array(categories, dtype=object)[category]),
        "description": string_column(descriptions),
        "tags": string_column(tags),
        "price": price,
        "cost": cost,
        "stock": stock.astype(np.int64),
        "peak_season": string_column(peaks),
    })
    return Products(frame, category, price, price_z, latent, popularity, trend, launch_day, peak)
