"""A synthetic e-commerce world with hidden personas, built with numpy only.

:func:`generate` draws, from one seed:

* users: a hidden persona (:data:`recsys.data.world.PERSONAS`) shifts age,
  region, spending tier and price sensitivity; the observable sensitivity
  mixes persona, region and age group (SPEC tables) with noise. Each user has
  category preferences ``softmax(log w_persona + 0.5 [c in region categories]
  + 0.4 [c in age-group categories] + N(0, 0.5^2))``, a latent taste vector
  ``p_u = m_persona + N(0, 0.8^2 I)``, a session rate (persona rate times a
  log-normal individual factor) and an active window (a quarter of the users
  join during the history, a fifth churn);
* products: category, sub-type, brand, material and features from
  :data:`recsys.data.world.CATALOGUE`; log-normal prices per category,
  cost below price, stock (some sold out), a peak season, a latent vector
  ``q_i = s_subtype + N(0, 0.7^2/d I)`` and a demand curve
  ``pop_i(t) = base_i * exp(trend_i (t/T - 1/2)) * 1.6^[season(t) = peak_i] * [t >= launch_i]``;
* events, session by session: a session's day follows the region's activity
  intensity (its users' expected seasonal boost, weekends, the holiday
  peak); its intent category follows the user's preferences times 1.8 for
  categories in season for the region (``config.boosted_categories``); each
  viewed product is the best of ``candidates`` draws from the persona's
  demand distribution ``pop_i(t) exp(m_persona . q_i)`` under the user's
  utility ``p_u . q_i - 0.8 |z_price(i) - target_tier(u)|`` plus Gumbel
  noise, so users of a persona co-like specific products and users still
  differ. Each view may lead to a favorite and a cart; carts convert to
  purchases or are abandoned; purchases may get a review whose rating rises
  with the user's affinity (see :func:`_funnel` for the probabilities).

Everything is vectorised over users in fixed-size chunks, each with its own
child of ``np.random.SeedSequence(seed)``, so the output depends only on the
parameters and the seed (never on the progress bar or the machine), and the
parquet files written by ``Dataset.save`` are byte-identical across runs.
Events that would fall after ``as_of`` (a session running past midnight of
the last day, a review written later) are censored; their count is kept in
``dataset.meta['censored_events']``.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from recsys.config import DEFAULT_CONFIG, EVENT_TYPES, ConfigError, RecsysConfig
from recsys.data.dataset import Dataset
from recsys.data.synthetic_population import Products, Users, make_products, make_users, sample_rows, string_column
from recsys.data.timestamps import as_timestamp
from recsys.data.world import PERSONAS, Persona

__all__ = ["DEFAULT_AS_OF", "GENERATOR_VERSION", "SECONDS_PER_DAY", "USER_CHUNK", "World", "build_world",
           "check_generate_args", "chunk_events", "generate", "string_column"]

DEFAULT_AS_OF = pd.Timestamp("2024-12-31")
"""The fixed end of every synthetic history (never "today")."""

GENERATOR_VERSION = 1
"""Bump when the generator's output changes; part of the cache key."""

USER_CHUNK = 4000  # users per chunk of event generation (fixed: part of the stream layout)
_BUCKET_DAYS = 30  # demand is piecewise constant over 30-day buckets
_SEASON_BOOST = 1.8  # multiplier on in-season categories' session probability
_PEAK_BOOST = 1.6  # multiplier on a product's demand in its peak season
_HOLIDAY_BOOST = 1.35  # activity multiplier from 20 November to 23 December
_WEEKEND_BOOST = 1.12
SECONDS_PER_DAY = 86_400
_TIER_TARGET = np.array([-0.8, 0.0, 0.8])  # preferred price z-score of budget / mid / premium users
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


_MAX_ACTIVITY = 1000.0  # sessions-per-month multiplier; beyond it the event count is unbounded in practice


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def check_generate_args(n_users: int, n_products: int, days: int, n_personas: int, personas: Sequence[Persona],
                activity: float, candidates: int, latent_dim: int, seed: int, config: RecsysConfig) -> None:
    """Every parameter's type and range; a ``ConfigError`` naming the first bad one."""
    if not isinstance(personas, Sequence) or not all(isinstance(p, Persona) for p in personas):
        raise ConfigError(f"generate(): personas must be a sequence of Persona, got {personas!r:.80}")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"generate(): seed must be a non-negative int (a fixed seed makes the data "
                          f"reproducible; pass an int such as 42), got {seed!r}")
    integers = [
        ("n_users", n_users, 1, "an integer >= 1"),
        ("n_products", n_products, len(config.categories),
         f"an integer >= {len(config.categories)} (one product per category at least)"),
        ("days", days, 1, "an integer >= 1"),
        ("n_personas", n_personas, 1, f"an integer in 1..{len(personas)}"),
        ("candidates", candidates, 1, "an integer >= 1"),
        ("latent_dim", latent_dim, 1, "an integer >= 1"),
    ]
    for name, value, low, expected in integers:
        if not _is_int(value) or value < low or (name == "n_personas" and value > len(personas)):
            raise ConfigError(f"generate(): {name} must be {expected}, got {value!r}")
    if (isinstance(activity, (bool, np.bool_)) or not isinstance(activity, numbers.Real)
            or not 0 < activity <= _MAX_ACTIVITY):
        raise ConfigError(f"generate(): activity must be a finite number in (0, {_MAX_ACTIVITY:g}], got {activity!r}")
    if len(config.spending_tiers) != 3:
        raise ConfigError(
            f"the synthetic generator needs exactly 3 spending tiers (cheapest first), got {config.spending_tier_names}"
        )


def _season_index(dates: pd.DatetimeIndex, config: RecsysConfig, season_order: list[str]) -> np.ndarray:
    table = np.array([season_order.index(config.seasons.season_of(m)) for m in range(1, 13)])
    return table[dates.month.to_numpy() - 1]


def _demand_table(products: Products, centroids: np.ndarray, n_buckets: int, bucket_season: np.ndarray,
                  bucket_mid: np.ndarray, days: int, n_cat: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative demand per (persona, bucket) block and category, for one
    ``searchsorted`` draw: block ``b``, category ``c`` and ``u ~ U[0, 1)``
    map to the product at ``searchsorted(table, b * n_cat + c + u, 'right')``.

    Returns the flat table and the product index of each of its columns
    (products sorted by category)."""
    order = np.argsort(products.category, kind="stable")
    cat_sorted = products.category[order]
    affinity = centroids @ products.latent[order].T  # personas x products
    affinity -= affinity.max(axis=1, keepdims=True)
    rows = []
    for p in range(len(centroids)):
        for b in range(n_buckets):
            t = bucket_mid[b]
            w = (products.popularity[order] * np.exp(products.trend[order] * (t / days - 0.5))
                 * np.where(products.peak[order] == bucket_season[b], _PEAK_BOOST, 1.0)
                 * (products.launch_day[order] <= t) * np.exp(affinity[p]))
            rows.append(_segment_cdf(w, cat_sorted, n_cat) + (len(rows) * n_cat))
    return np.concatenate(rows), order


def _segment_cdf(weights: np.ndarray, segment: np.ndarray, n_segments: int) -> np.ndarray:
    """``segment + cdf within segment`` (segment values sorted ascending); a
    segment with zero total weight falls back to uniform."""
    out = np.empty(len(weights))
    bounds = np.searchsorted(segment, np.arange(n_segments + 1))
    for s in range(n_segments):
        lo, hi = bounds[s], bounds[s + 1]
        if hi == lo:
            continue
        w = weights[lo:hi]
        if not w.sum() > 0:
            w = np.ones(hi - lo)
        cdf = np.cumsum(w) / w.sum()
        cdf[-1] = 1.0
        out[lo:hi] = s + cdf
    return out


def _segment_search(table: np.ndarray, segment: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``searchsorted(table, segment + u, 'right')``, with the queries sorted
    by segment first (a radix sort) so each binary search stays in one
    cache-resident segment of the table: about 5x faster than random order."""
    order = np.argsort(segment.astype(np.int16 if segment.max(initial=0) < 2**15 else np.int64), kind="stable")
    found = np.empty(len(segment), dtype=np.int64)
    found[order] = np.searchsorted(table, segment[order] + u[order], side="right")
    return found


@dataclass
class World:
    users: Users
    products: Products
    personas: Sequence[Persona]
    demand: np.ndarray  # see _demand_table
    demand_order: np.ndarray
    day_cdf: np.ndarray  # regions x days: cumulative activity intensity
    day_season: np.ndarray  # season index of each day
    season_boost: np.ndarray  # regions x seasons x categories
    n_buckets: int
    days: int
    candidates: int
    centre: float = 0.0  # affinity = (utility - centre) / scale
    scale: float = 1.0


def _persona_column(w: World, name: str, persona: np.ndarray) -> np.ndarray:
    return np.array([getattr(p, name) for p in w.personas])[persona]


def _views(rng: np.random.Generator, users_idx: np.ndarray, w: World) -> dict[str, np.ndarray]:
    """Sessions and product views of the users ``users_idx``.

    Returns per view: user, session (chunk-local), time (seconds since the
    window start), product and the user's utility for it; plus ``n_sessions``.
    """
    U, P = w.users, w.products
    n_cat = w.season_boost.shape[2]
    first, last = U.join_day[users_idx], U.leave_day[users_idx]
    n_sess = rng.poisson(U.rate[users_idx] * (last - first + 1))
    s_user = np.repeat(users_idx, n_sess)
    S = len(s_user)
    region = U.region[s_user]
    # Day: inverse CDF of the region's intensity restricted to the active window.
    lo = np.where(U.join_day[s_user] > 0, w.day_cdf[region, np.maximum(U.join_day[s_user] - 1, 0)], 0.0)
    hi = w.day_cdf[region, U.leave_day[s_user]]
    u = lo + rng.random(S) * (hi - lo)
    flat = (w.day_cdf + np.arange(len(w.day_cdf))[:, None]).ravel()
    day = np.searchsorted(flat, region + u, side="right") - region * w.days
    day = np.clip(day, U.join_day[s_user], U.leave_day[s_user])
    time_of_day = np.mod(rng.normal(19.5 * 3600, 3.5 * 3600, S), SECONDS_PER_DAY)
    s_time = day * SECONDS_PER_DAY + time_of_day

    s_cat = sample_rows(rng, U.preference[s_user] * w.season_boost[region, w.day_season[day]])
    persona = U.persona[s_user]
    n_views = 1 + rng.poisson(_persona_column(w, "views_per_session", persona) - 1.0)

    v_sess = np.repeat(np.arange(S), n_views)
    V = len(v_sess)
    v_user = s_user[v_sess]
    switch = rng.random(V) < 0.2  # a fifth of views stray from the session's intent
    v_cat = np.where(switch, sample_rows(rng, U.preference[v_user]), s_cat[v_sess])
    block = persona[v_sess] * w.n_buckets + np.minimum(day[v_sess] // _BUCKET_DAYS, w.n_buckets - 1)
    segment = np.repeat(block * n_cat + v_cat, w.candidates)
    found = _segment_search(w.demand, segment, rng.random(V * w.candidates))
    cand = w.demand_order[found % len(w.demand_order)].reshape(V, w.candidates)

    taste = U.taste[v_user]
    utility = np.empty((V, w.candidates))
    for k in range(w.candidates):
        utility[:, k] = np.einsum("ij,ij->i", taste, P.latent[cand[:, k]])
    utility -= 0.8 * np.abs(P.price_z[cand] - _TIER_TARGET[U.tier[v_user]][:, None])
    best = np.argmax(utility + rng.gumbel(size=(V, w.candidates)), axis=1)

    gaps = rng.exponential(75.0, V)  # seconds between views of a session
    start = (np.cumsum(n_views) - n_views).astype(np.int64)  # first view of each session (none if S = 0)
    gaps[start] = 0.0
    cum = np.cumsum(gaps)
    return {
        "user": v_user, "session": v_sess, "time": s_time[v_sess] + cum - cum[start][v_sess],
        "product": cand[np.arange(V), best], "utility": utility[np.arange(V), best], "n_sessions": np.array([S]),
    }


_EVENT_DTYPES = {"user": np.int32, "product": np.int32, "type": np.int8, "time": np.int64, "session": np.int64,
                 "quantity": np.int16, "rating": np.int8}
"""Compact per-event columns while generating (rating 0 = no rating)."""


def _funnel(rng: np.random.Generator, views: dict[str, np.ndarray], w: World) -> dict[str, np.ndarray]:
    """Favorites, carts, purchases and reviews that follow the ``views``.

    With ``a = (utility - centre) / scale`` the standardised affinity, ``s``
    the user's price sensitivity and ``z`` the product's price z-score within
    its category: ``P(favorite) = sigmoid(logit f + a)``, ``P(cart) =
    sigmoid(logit c + a - 0.8 s z)``, ``P(purchase | cart) = sigmoid(logit b
    + 0.6 a - 1.5 (s - 0.5) z)``, ``P(review | purchase) = r`` with the
    persona's base rates ``f, c, b, r``; rating ``= clip(round(3.9 + 0.8 a +
    N(0, 0.9)), 1, 5)``, except a 5% chance of a faulty item rated 1 or 2."""
    U, P = w.users, w.products
    V = len(views["user"])
    user, product = views["user"], views["product"]
    persona = U.persona[user]
    rate = {name: _persona_column(w, name, persona)
            for name in ("favorite_rate", "cart_rate", "purchase_rate", "review_rate")}
    affinity = (views["utility"] - w.centre) / w.scale
    sens, pz = U.sensitivity[user], P.price_z[product]
    fav = rng.random(V) < _sigmoid(_logit(rate["favorite_rate"]) + affinity)
    cart = rng.random(V) < _sigmoid(_logit(rate["cart_rate"]) + affinity - 0.8 * sens * pz)
    buy = cart & (rng.random(V) < _sigmoid(_logit(rate["purchase_rate"]) + 0.6 * affinity
                                           - 1.5 * (sens - 0.5) * pz))
    review = buy & (rng.random(V) < rate["review_rate"])
    rating = np.clip(np.rint(3.9 + 0.8 * affinity + rng.normal(0.0, 0.9, V)), 1, 5)
    rating = np.where(rng.random(V) < 0.05, rng.integers(1, 3, V), rating)
    qty = 1 + rng.poisson(0.12 + 0.35 * (pz < -0.5), V)
    t_view = views["time"]
    t_cart = t_view + rng.uniform(10, 180, V)
    t_buy = t_cart + rng.uniform(60, 1200, V)
    parts = [  # (mask, type code, time, quantity, rating)
        (np.ones(V, bool), 0, t_view, 0, 0),
        (fav, 1, t_view + rng.uniform(5, 90, V), 0, 0),
        (cart, 2, t_cart, qty, 0),
        (buy, 3, t_buy, qty, 0),
        (review, 4, t_buy + (1.0 + rng.exponential(6.0, V)) * SECONDS_PER_DAY, 0, rating),
    ]
    columns: dict[str, list[np.ndarray]] = {k: [] for k in _EVENT_DTYPES}
    for mask, code, t, q, r in parts:
        n = int(mask.sum())
        columns["user"].append(user[mask])
        columns["product"].append(product[mask])
        columns["type"].append(np.full(n, code))
        columns["time"].append(np.floor(t[mask]))
        columns["session"].append(views["session"][mask])
        columns["quantity"].append(q[mask] if np.ndim(q) else np.full(n, q))
        columns["rating"].append(r[mask] if np.ndim(r) else np.full(n, r))
    return {k: np.concatenate(v).astype(_EVENT_DTYPES[k]) for k, v in columns.items()}


def _calibrate(rng: np.random.Generator, w: World, sample: int = 2000) -> tuple[float, float]:
    """Median and standard deviation of viewed-product utility over the views
    of a random sample of users (a separate random stream): the funnel's
    affinity is standardised with them, so base rates hold at the median
    view whatever the catalogue size."""
    n_users = len(w.users.persona)
    users = np.sort(rng.choice(n_users, size=min(sample, n_users), replace=False))
    utility = _views(rng, users, w)["utility"]
    if len(utility) < 2:
        return 0.0, 1.0
    return float(np.median(utility)), float(max(utility.std(), 1e-6))


def chunk_events(rng: np.random.Generator, users: np.ndarray, world: World) -> tuple[dict[str, np.ndarray], int]:
    """The events of the users ``users`` (one chunk): their sessions of views, then
    the funnel (favorites, carts, purchases, reviews); and the number of sessions,
    numbered from 0 within the chunk."""
    views = _views(rng, users, world)
    return _funnel(rng, views, world), int(views["n_sessions"][0])


def build_world(n_users: int, n_products: int, days: int, start: pd.Timestamp, seed: int,
                personas: Sequence[Persona], activity: float, candidates: int, latent_dim: int,
                config: RecsysConfig) -> tuple[World, list[np.random.SeedSequence]]:
    """The world :func:`generate` simulates (users, products, demand by time bucket,
    seasonal boosts, daily activity, calibration), starting at ``start``, and one seed
    sequence per chunk of :data:`USER_CHUNK` users: shared with the chunked writer
    (:mod:`recsys.data.synthetic_stream`), so both draw the same world from one seed."""
    n_personas = len(personas)
    seq = np.random.SeedSequence(seed)
    s_latent, s_users, s_products, s_events, s_calibration = seq.spawn(5)
    centroids = np.random.default_rng(s_latent).normal(0.0, 1.0, (n_personas, latent_dim))
    users = make_users(np.random.default_rng(s_users), n_users, days, personas, centroids, activity, config)
    products = make_products(np.random.default_rng(s_products), n_products, days, latent_dim, config)

    season_order = list(dict.fromkeys(["winter", "spring", "summer", "autumn"]
                                      + list(config.seasons.month_to_season.values())))
    dates = pd.DatetimeIndex(start + pd.to_timedelta(np.arange(days), unit="D"))
    day_season = _season_index(dates, config, season_order)
    n_buckets = -(-days // _BUCKET_DAYS)
    bucket_mid = np.minimum(np.arange(n_buckets) * _BUCKET_DAYS + _BUCKET_DAYS / 2, days - 0.5)
    bucket_season = day_season[bucket_mid.astype(int)]
    demand, order = _demand_table(products, centroids, n_buckets, bucket_season, bucket_mid, days,
                                  len(config.categories))

    regions = config.region_names
    boost = np.ones((len(regions), len(season_order), len(config.categories)))
    for r, region in enumerate(regions):
        for s, season in enumerate(season_order):
            in_season = config.boosted_categories(region, season) if season in config.seasons.month_to_season.values() \
                else ()
            for c, category in enumerate(config.categories):
                if category in in_season:
                    boost[r, s, c] = _SEASON_BOOST
    # Activity intensity per region and day: expected seasonal boost of the
    # region's users, weekends, and the holiday shopping peak.
    region_pref = np.array([users.preference[users.region == r].mean(axis=0) if (users.region == r).any()
                            else np.full(len(config.categories), 1 / len(config.categories))
                            for r in range(len(regions))])
    intensity = np.einsum("rc,rdc->rd", region_pref, boost[:, day_season, :])
    holiday = ((dates.month == 11) & (dates.day >= 20)) | ((dates.month == 12) & (dates.day <= 23))
    intensity = intensity * np.where(holiday, _HOLIDAY_BOOST, 1.0) * np.where(dates.day_of_week >= 5,
                                                                               _WEEKEND_BOOST, 1.0)
    day_cdf = np.cumsum(intensity, axis=1)
    day_cdf /= day_cdf[:, -1:]
    day_cdf[:, -1] = 1.0

    world = World(users, products, personas, demand, order, day_cdf, day_season, boost, n_buckets, days,
                   candidates)
    world.centre, world.scale = _calibrate(np.random.default_rng(s_calibration), world)
    return world, s_events.spawn(-(-n_users // USER_CHUNK))


def _all_events(world: World, chunk_seeds: Sequence[np.random.SeedSequence], n_users: int, days: int,
                progress: bool) -> tuple[dict[str, np.ndarray], int, int]:
    """Every user chunk's events (chunk ``i``: users ``i * USER_CHUNK`` on, drawn with
    ``chunk_seeds[i]``), those after the window's end dropped, sorted by (time,
    session, type). Returns the events, how many were censored and how many
    session ids were drawn."""
    chunks = []
    session_offset = 0
    for i in tqdm(range(len(chunk_seeds)), desc="generating events", unit="chunk", disable=not progress):
        idx = np.arange(i * USER_CHUNK, min((i + 1) * USER_CHUNK, n_users))
        rng = np.random.default_rng(chunk_seeds[i])
        chunk, n_sessions = chunk_events(rng, idx, world)
        chunk["session"] += session_offset
        session_offset += n_sessions
        chunks.append(chunk)
    ev = {k: np.concatenate([c.pop(k) for c in chunks]) for k in _EVENT_DTYPES}
    del chunks

    keep = np.flatnonzero(ev["time"] <= days * SECONDS_PER_DAY)
    censored = len(ev["time"]) - len(keep)
    keep = keep[np.lexsort((ev["type"][keep], ev["session"][keep], ev["time"][keep]))]
    return {k: v[keep] for k, v in ev.items()}, censored, session_offset


def generate(
    n_users: int = 800,
    n_products: int = 300,
    days: int = 180,
    as_of: str | pd.Timestamp = DEFAULT_AS_OF,
    seed: int = 42,
    n_personas: int = 8,
    activity: float = 1.0,
    candidates: int = 8,
    latent_dim: int = 16,
    progress: bool | None = None,
    config: RecsysConfig = DEFAULT_CONFIG,
    personas: Sequence[Persona] = PERSONAS,
) -> Dataset:
    """Generate a synthetic world (see the module docstring for the model).

    ``n_personas`` uses the first personas of ``personas``; ``activity``
    scales every user's session rate; ``candidates`` is how many draws from
    the persona's demand distribution a user chooses among per view (1: pure
    persona-level taste). Events lie in ``[as_of - days, as_of]``. The
    hidden personas are in ``dataset.personas`` (``user_id, persona``).
    ``seed`` must be a non-negative int (``None`` is refused: the data would
    not be reproducible); ``as_of`` follows the timestamp rule of
    :mod:`recsys.data.timestamps` (tz-aware -> UTC, zone dropped). A bad
    parameter is a ``ConfigError`` (a ``ValueError``) naming it.
    ``progress``: show a tqdm bar over user chunks; ``None`` shows it for
    large worlds (``n_users * days >= 5e6``) when stderr is a terminal, so
    notebooks and logs stay clean. It never changes the data.
    """
    check_generate_args(n_users, n_products, days, n_personas, personas, activity, candidates, latent_dim, seed, config)
    as_of = as_timestamp(as_of, "as_of")  # naive UTC; a tz-aware value is converted (recsys.data.timestamps)
    start = as_of - pd.Timedelta(days=days)
    if progress is None:
        progress = n_users * days >= 5_000_000 and sys.stderr.isatty()
    personas = tuple(personas[:n_personas])
    world, chunk_seeds = build_world(n_users, n_products, days, start, seed, personas, activity, candidates,
                                     latent_dim, config)
    users, products, regions = world.users, world.products, config.region_names
    ev, censored, session_offset = _all_events(world, chunk_seeds, n_users, days, progress)
    # Session ids numbered in order of first appearance in time.
    _, first_seen = np.unique(ev["session"], return_index=True)
    rank = np.empty(session_offset, dtype=np.int64)
    rank[ev["session"][np.sort(first_seen)]] = np.arange(len(first_seen))
    session_names = np.array([f"session_{i}" for i in range(len(first_seen))], dtype=object)
    is_purchase = ev["type"] == EVENT_TYPES.index("purchase")
    value = np.where(is_purchase, np.round(ev["quantity"] * products.price[ev["product"]], 2), np.nan)
    rating = np.where(ev["rating"] > 0, ev["rating"], np.nan)

    user_ids = np.array([f"user_{i}" for i in range(n_users)], dtype=object)
    events = pd.DataFrame({
        "user_id": string_column(user_ids[ev.pop("user")]),
        "product_id": string_column(products.frame["product_id"].to_numpy(dtype=object)[ev.pop("product")]),
        "event_type": string_column(np.array(EVENT_TYPES, dtype=object)[ev.pop("type")]),
        "timestamp": pd.DatetimeIndex(start.as_unit("ns").asm8 + ev.pop("time").astype("timedelta64[s]")),
        "session_id": string_column(session_names[rank[ev.pop("session")]]),
        "quantity": ev.pop("quantity").astype(np.int64),
        "value": value,
        "rating": rating,
    })
    users_frame = pd.DataFrame({
        "user_id": string_column(user_ids),
        "age": users.age.astype(float),
        "region": string_column(np.array(regions, dtype=object)[users.region]),
        "spending_tier": string_column(np.array(config.spending_tier_names, dtype=object)[users.tier]),
        "price_sensitivity": users.sensitivity,
    })
    persona_frame = pd.DataFrame({
        "user_id": string_column(user_ids),
        "persona": string_column(np.array([p.name for p in personas], dtype=object)[users.persona]),
    })
    params: dict[str, Any] = {
        "n_users": n_users, "n_products": n_products, "days": days, "as_of": as_of.isoformat(), "seed": seed,
        "n_personas": n_personas, "activity": activity, "candidates": candidates, "latent_dim": latent_dim,
    }
    meta = {"generator": "recsys.data.synthetic", "generator_version": GENERATOR_VERSION, "params": params,
            "censored_events": censored, "sessions": int(len(first_seen)),
            "affinity_centre": round(world.centre, 6), "affinity_scale": round(world.scale, 6)}
    return Dataset(users_frame, products.frame, events, as_of, personas=persona_frame, meta=meta, config=config)
