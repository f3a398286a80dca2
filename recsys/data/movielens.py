"""MovieLens 100K in its original file format -> a :class:`Dataset`.

Reads three files from one directory (GroupLens, https://grouplens.org/datasets/movielens/100k/;
F. Maxwell Harper and Joseph A. Konstan, "The MovieLens Datasets: History and
Context", ACM TiiS 5(4), 2015). The files may not be redistributed, so the
project never ships them; tests use a small fixture written by the project in
the same format.

- ``u.data``: tab-separated ``user item rating timestamp`` (unix seconds,
  read as naive UTC: the timestamp rule of :mod:`recsys.data.timestamps`;
  a value beyond the datetime64[ns] range, such as a timestamp in
  milliseconds, is refused naming its line);
- ``u.user``: ``|``-separated ``id|age|gender|occupation|zip``;
- ``u.item``: ``|``-separated, latin-1, ``id|title|release date|video release
  date|IMDb URL|`` then 19 genre flags in :data:`GENRES` order.

Mapping rules:

- every rating -> a ``review`` event (quantity 0, rating 1..5); a rating
  ``>= purchase_threshold`` (4) is also a ``purchase`` event of one unit
  whose value is the item's nominal ``price`` (movies have no price: every
  item gets the same nominal price, default 1.0, so values count titles);
- ``session_id`` = user and calendar day (UTC) of the rating;
- users ``user_<id>``: age kept when inside the data model's 13..110, else
  unknown (NaN; MovieLens has users aged 7..12), counted in ``meta``; age
  groups then come from the config; region from the zip code: five digits
  -> ``"NA"`` (USA), a Canadian postal code (letter digit letter ...) ->
  ``"NA"``, anything else -> ``"Other"``; spending tier by terciles of the
  user's number of purchases (ties broken by user order); price sensitivity
  unknown (NaN). Gender and occupation are not part of the data model and
  are not kept.
- items ``product_<id>``: name = title; category = the first genre flagged,
  in file order, ignoring ``unknown`` when another genre is flagged (no
  flag -> ``"unknown"``); tags = all flagged genres, ``|``-separated;
  description = ``"<title>. Genres: <genres>."``; cost unknown (NaN); stock
  ``default_stock`` (a placeholder); peak season ``"none"``.
- ``as_of`` = the last rating time.
"""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.data.dataset import Dataset
from recsys.data.errors import DataFileError
from recsys.data.tiers import spending_tiers_by_rank

__all__ = ["GENRES", "load_movielens_100k", "read_u_data", "read_u_item", "read_u_user", "region_of_zip"]

GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
"""The 19 genre flags of ``u.item``, in file order."""

SOURCE_URL = "https://grouplens.org/datasets/movielens/100k/"
_US_ZIP = re.compile(r"^\d{5}$")
_CANADIAN_POSTAL = re.compile(r"^[A-Za-z]\d[A-Za-z]")


_MAX_UNIX_SECONDS = int(pd.Timestamp.max.value // 1_000_000_000)
"""The last unix second datetime64[ns] can hold (2262-04-11); a larger value is not seconds."""


def _read(path: Path, columns: list[str], sep: str, encoding: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's fields as strings, and the 1-based file line of each row (blank lines skipped)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"MovieLens 100K file {path.name} not found in {path.parent}. Download ml-100k from {SOURCE_URL} "
            "(its licence forbids redistribution, so the project does not ship it) and pass the directory that "
            "holds u.data, u.user and u.item."
        )
    try:
        frame = pd.read_csv(path, sep=sep, header=None, dtype=str, encoding=encoding, quoting=csv.QUOTE_NONE,
                            keep_default_na=False, skip_blank_lines=False, on_bad_lines="error", engine="python")
    except pd.errors.EmptyDataError:
        raise DataFileError(path, f"empty file: expected lines of {len(columns)} {sep!r}-separated fields") from None
    except (pd.errors.ParserError, csv.Error) as error:
        found = re.search(r"line (\d+)", str(error))
        raise DataFileError(path, f"malformed line: {error}; expected {len(columns)} {sep!r}-separated fields",
                            [int(found.group(1))] if found else None) from None
    blank = (frame.isna() | frame.eq("")).all(axis=1).to_numpy()
    lines = np.flatnonzero(~blank) + 1
    frame = frame[~blank].reset_index(drop=True)
    if frame.empty:
        raise DataFileError(path, f"no data lines: expected lines of {len(columns)} {sep!r}-separated fields")
    if frame.shape[1] != len(columns):
        raise DataFileError(path, f"expected {len(columns)} {sep!r}-separated fields per line, got {frame.shape[1]}")
    short = frame.isna().any(axis=1).to_numpy()  # fields missing at the end of a line (an empty field is "")
    if short.any():
        raise DataFileError(path, f"malformed line(s): fewer than {len(columns)} {sep!r}-separated fields",
                            lines[short][:3].tolist())
    frame.columns = columns
    return frame, lines


def _integers(frame: pd.DataFrame, column: str, path: Path, lines: np.ndarray, low: int | None = None,
              high: int | None = None, hint_above: str = "") -> pd.Series:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() | (values % 1 != 0)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    if bad.any():
        where = lines[bad.to_numpy()][:3].tolist()
        examples = frame.loc[bad, column].head(3).tolist()
        expected = "an integer" + (f" in {low}..{high}" if low is not None and high is not None else "")
        if high is not None and (values > high).any():
            expected += hint_above
        raise DataFileError(path, f"column {column!r} must be {expected}; {int(bad.sum())} bad value(s) {examples}",
                            where)
    return values.astype("int64")


def _read_u_data(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    frame, lines = _read(path, ["user", "item", "rating", "timestamp"], "\t", "latin-1")
    seconds = _integers(frame, "timestamp", path, lines, 0, _MAX_UNIX_SECONDS,
                        " (unix seconds; a value this large is probably milliseconds)")
    out = pd.DataFrame({
        "user": _integers(frame, "user", path, lines, 1, None),
        "item": _integers(frame, "item", path, lines, 1, None),
        "rating": _integers(frame, "rating", path, lines, 1, 5),
        "timestamp": pd.to_datetime(seconds, unit="s").astype("datetime64[ns]"),
    })
    duplicated = out.duplicated(["user", "item"])
    if duplicated.any():
        where = lines[duplicated.to_numpy()][:3].tolist()
        raise DataFileError(path, f"{int(duplicated.sum())} repeated (user, item) rating(s)", where)
    return out, lines


def read_u_data(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``u.data`` as ``user, item, rating, timestamp`` (ints; rating 1..5; timestamp naive UTC datetime64[ns])."""
    return _read_u_data(Path(path))[0]


def read_u_user(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``u.user`` as ``user, age, gender, occupation, zip``."""
    path = Path(path)
    frame, lines = _read(path, ["user", "age", "gender", "occupation", "zip"], "|", "latin-1")
    out = frame.assign(user=_integers(frame, "user", path, lines, 1, None),
                       age=_integers(frame, "age", path, lines, 0, 130))
    _no_duplicate_ids(out, "user", path, lines)
    return out


def read_u_item(path: str | os.PathLike[str]) -> pd.DataFrame:
    """``u.item`` (latin-1) as ``item, title, release_date, genres`` (genres: tuple of flagged names)."""
    path = Path(path)
    columns = ["item", "title", "release_date", "video_release_date", "imdb_url", *GENRES]
    frame, lines = _read(path, columns, "|", "latin-1")
    flags = np.column_stack([_integers(frame, g, path, lines, 0, 1).to_numpy() for g in GENRES]).astype(bool)
    out = pd.DataFrame({
        "item": _integers(frame, "item", path, lines, 1, None),
        "title": frame["title"].str.strip(),
        "release_date": frame["release_date"],
        "genres": [tuple(g for g, f in zip(GENRES, row, strict=True) if f) for row in flags],
    })
    _no_duplicate_ids(out, "item", path, lines)
    return out


def _no_duplicate_ids(frame: pd.DataFrame, column: str, path: Path, lines: np.ndarray) -> None:
    dup = frame[column].duplicated()
    if dup.any():
        where = lines[dup.to_numpy()][:3].tolist()
        raise DataFileError(path, f"duplicate {column} id(s) {frame.loc[dup, column].head(3).tolist()}", where)


def region_of_zip(zip_code: object) -> str:
    """Five digits -> ``"NA"`` (USA); a Canadian postal code -> ``"NA"``; else ``"Other"``."""
    text = "" if zip_code is None or (isinstance(zip_code, float) and zip_code != zip_code) else str(zip_code).strip()
    if _US_ZIP.match(text) or _CANADIAN_POSTAL.match(text):
        return "NA"
    return "Other"


def _category(genres: tuple[str, ...]) -> str:
    named = [g for g in genres if g != "unknown"]
    return named[0] if named else "unknown"


def _events(ratings: pd.DataFrame, bought: pd.Series, price: float) -> pd.DataFrame:
    """One review per rating and one purchase (quantity 1 at ``price``) per rating in ``bought``;
    a session is a user's day. Sorted by (timestamp, user, product, event type)."""
    user_id = "user_" + ratings["user"].astype(str)
    product_id = "product_" + ratings["item"].astype(str)
    session = user_id + "_" + ratings["timestamp"].dt.strftime("%Y%m%d")
    reviews = pd.DataFrame({
        "user_id": user_id, "product_id": product_id, "event_type": "review", "timestamp": ratings["timestamp"],
        "session_id": session, "quantity": 0, "value": np.nan, "rating": ratings["rating"].astype("float64"),
    })
    purchases = pd.DataFrame({
        "user_id": user_id[bought], "product_id": product_id[bought], "event_type": "purchase",
        "timestamp": ratings.loc[bought, "timestamp"], "session_id": session[bought], "quantity": 1,
        "value": float(price), "rating": np.nan,
    })
    events = pd.concat([reviews, purchases], ignore_index=True)
    events = events.sort_values(["timestamp", "user_id", "product_id", "event_type"], kind="stable")
    events = events.reset_index(drop=True).astype({"user_id": object, "product_id": object, "session_id": object,
                                                    "event_type": object})
    return events


def load_movielens_100k(
    directory: str | os.PathLike[str],
    *,
    purchase_threshold: int = 4,
    price: float = 1.0,
    default_stock: int = 100,
    config: RecsysConfig = DEFAULT_CONFIG,
) -> Dataset:
    """Read ``u.data``, ``u.user`` and ``u.item`` from ``directory`` and map
    them onto a :class:`Dataset` (rules in the module docstring).

    Raises ``FileNotFoundError`` naming a missing file and where to get it,
    :class:`~recsys.data.errors.DataFileError` (a ``ValueError``) naming the
    file, column and line of a malformed line or value, an empty file, or a
    rating of an unknown user or item.
    """
    if isinstance(purchase_threshold, bool) or not isinstance(purchase_threshold, (int, np.integer)) \
            or not 1 <= purchase_threshold <= 5:
        raise ValueError(f"purchase_threshold must be an int in 1..5, got {purchase_threshold!r}")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not (price > 0 and math.isfinite(price)):
        raise ValueError(f"price must be a positive finite number, got {price!r}")
    if isinstance(default_stock, bool) or not isinstance(default_stock, (int, np.integer)) or default_stock < 0:
        raise ValueError(f"default_stock must be a non-negative int, got {default_stock!r}")
    for region in ("NA", "Other"):
        config.region(region)  # raises ConfigError naming the missing region
    directory = Path(directory)
    ratings, rating_lines = _read_u_data(directory / "u.data")
    user_table = read_u_user(directory / "u.user").sort_values("user", kind="stable").reset_index(drop=True)
    items = read_u_item(directory / "u.item").sort_values("item", kind="stable").reset_index(drop=True)
    for column, known, name in (("user", user_table["user"], "u.user"), ("item", items["item"], "u.item")):
        unknown = ~ratings[column].isin(known)
        if unknown.any():
            where = rating_lines[unknown.to_numpy()][:3].tolist()
            raise DataFileError(directory / "u.data", f"{int(unknown.sum())} rating(s) of {column}s missing from "
                                f"{name}, e.g. {ratings.loc[unknown, column].head(3).tolist()}", where)

    ratings = ratings.sort_values(["timestamp", "user", "item"], kind="stable").reset_index(drop=True)
    bought = ratings["rating"] >= purchase_threshold
    events = _events(ratings, bought, float(price))

    ages = user_table["age"].astype("float64")
    inside = ages.between(13, 110)
    n_purchases = ratings.loc[bought].groupby("user").size().reindex(user_table["user"], fill_value=0)
    users = pd.DataFrame({
        "user_id": ("user_" + user_table["user"].astype(str)).to_numpy(dtype=object),
        "age": ages.where(inside, np.nan).to_numpy(),
        "region": user_table["zip"].map(region_of_zip).to_numpy(dtype=object),
        "spending_tier": spending_tiers_by_rank(n_purchases.to_numpy(), config),
        "price_sensitivity": np.nan,
    })

    genres = items["genres"]
    products = pd.DataFrame({
        "product_id": ("product_" + items["item"].astype(str)).to_numpy(dtype=object),
        "name": items["title"].where(items["title"] != "", "untitled").to_numpy(dtype=object),
        "category": genres.map(_category).to_numpy(dtype=object),
        "description": [f"{t}. Genres: {', '.join(g) if g else 'none'}." for t, g in zip(items["title"], genres, strict=True)],
        "tags": genres.map(lambda g: "|".join(x.lower() for x in g)).to_numpy(dtype=object),
        "price": float(price),
        "cost": np.nan,
        "stock": np.full(len(items), int(default_stock), dtype="int64"),
        "peak_season": "none",
    })
    products["description"] = products["description"].astype(object)
    meta = {
        "source": "MovieLens 100K (GroupLens), original file format",
        "directory": str(directory),
        "purchase_threshold": int(purchase_threshold),
        "nominal_price": float(price),
        "ratings": int(len(ratings)),
        "purchases": int(bought.sum()),
        "ages_outside_13_110_set_unknown": int((~inside).sum()),
        "users_by_region": {k: int(v) for k, v in users["region"].value_counts().sort_index().items()},
    }
    return Dataset(users, products, events, as_of=ratings["timestamp"].max(), meta=meta, config=config)

