"""The ``Dataset``: users, products and events, validated on construction.

Schema (column: dtype kind, rule). ``*`` marks a column where NaN is allowed.

users
    user_id: str, unique, an id (:mod:`recsys.data.ids`: 1..128 characters, no whitespace)
    age: float, 13..110 (``*`` NaN where the age is unknown, e.g. real data)
    region: str, a configured region name
    spending_tier: str, a configured spending tier
    price_sensitivity: float, 0..1 (``*`` NaN where unknown)
products
    product_id: str, unique, an id (the same rule)
    name, category, description: str (category: any non-empty string)
    tags: str, tags separated by ``|`` (may be empty)
    price: float > 0
    cost: float > 0 (``*`` NaN where unknown)
    stock: int >= 0
    peak_season: str, one of winter/spring/summer/autumn/none
events
    user_id, product_id: str, must exist in users / products
    event_type: str, one of view/favorite/cart/purchase/review
    timestamp: datetime64, <= ``as_of``; timezone-aware values are converted to
        UTC and the zone dropped (:mod:`recsys.data.timestamps`), as is ``as_of``
    session_id: str
    quantity: int >= 0 (purchases >= 1)
    value: float >= 0 (``*`` NaN but for purchases)
    rating: float 1..5 for reviews (``*`` NaN for other events)

Every float column is finite (``inf``/``-inf`` are refused; NaN only where
``*`` allows it); float columns take real numbers only (a complex column is
refused, never cut to its real part); int columns must fit int64 in their
original dtype (a uint64 ``2**64 - 1`` is refused, never wrapped to -1);
column names are unique. ``as_of`` is a timestamp (``NaT``, numbers and
unparseable strings are refused).

Validation raises :class:`DataValidationError` naming the frame, the column,
how many rows are wrong and a few examples. Nothing is dropped silently:
:func:`drop_invalid_events` returns the kept frame and a report of what it
removed and why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, EVENT_TYPES, SEASONS, RecsysConfig
from recsys.data.errors import DataFileError, DataValidationError
from recsys.data.ids import ID_RULE, invalid_id_mask
from recsys.data.timestamps import as_timestamp, naive_utc, naive_utc_ns

__all__ = ["CANONICAL_DTYPE", "DataFileError", "DataValidationError", "Dataset", "EventIndex", "SCHEMA", "check_event_amounts", "check_finite",
           "drop_invalid_events", "FORMAT_VERSION"]

FORMAT_VERSION = 2
_HASH_CHUNK = 1 << 19  # rows hashed at a time by Dataset.content_hash
"""2: the manifest lists every file with its sha256; the content hash covers personas."""


@dataclass(frozen=True)
class Column:
    kind: str  # "str", "float", "int", "datetime", "bool"
    nullable: bool = False


SCHEMA: Mapping[str, Mapping[str, Column]] = {
    "users": {
        "user_id": Column("str"),
        "age": Column("float", nullable=True),
        "region": Column("str"),
        "spending_tier": Column("str"),
        "price_sensitivity": Column("float", nullable=True),
    },
    "products": {
        "product_id": Column("str"),
        "name": Column("str"),
        "category": Column("str"),
        "description": Column("str"),
        "tags": Column("str"),
        "price": Column("float"),
        "cost": Column("float", nullable=True),
        "stock": Column("int"),
        "peak_season": Column("str"),
    },
    "events": {
        "user_id": Column("str"),
        "product_id": Column("str"),
        "event_type": Column("str"),
        "timestamp": Column("datetime"),
        "session_id": Column("str"),
        "quantity": Column("int"),
        "value": Column("float", nullable=True),
        "rating": Column("float", nullable=True),
    },
}

_KIND_CHECKS: dict[str, Callable[[pd.Series], bool]] = {
    "str": lambda s: pd.api.types.is_string_dtype(s) or pd.api.types.is_object_dtype(s),
    "float": lambda s: (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                        and not pd.api.types.is_complex_dtype(s)),
    "int": lambda s: pd.api.types.is_integer_dtype(s),
    "datetime": lambda s: pd.api.types.is_datetime64_any_dtype(s),
    "bool": lambda s: pd.api.types.is_bool_dtype(s),
}

CANONICAL_DTYPE = {"str": object, "float": "float64", "int": "int64", "datetime": "datetime64[ns]"}


def _bad(frame: str, column: str | None, problem: str, mask: np.ndarray | pd.Series, values: Any) -> None:
    count = int(np.asarray(mask).sum())
    if count:
        raise DataValidationError(frame, column, problem, count, values[np.asarray(mask)])


_COPY_ON_WRITE = int(pd.__version__.split(".")[0]) >= 3 or pd.options.mode.copy_on_write is True


def _check_columns(name: str, df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(name, None, f"expected a pandas DataFrame, got {type(df).__name__}")
    repeated = df.columns[df.columns.duplicated()]
    if len(repeated):
        raise DataValidationError(name, str(repeated[0]), f"duplicate column name(s) {list(dict.fromkeys(repeated))}")
    schema = SCHEMA[name]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise DataValidationError(name, missing[0], f"missing column(s) {missing}; expected {list(schema)}")
    df = df.reset_index(drop=True)
    for column, spec in schema.items():
        series = df[column]
        if not _KIND_CHECKS[spec.kind](series):
            raise DataValidationError(name, column, f"wrong dtype {series.dtype}, expected {spec.kind}")
        if spec.kind == "str":
            # infer_dtype is a C-level scan; the per-value check runs only to find examples.
            if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
                nonstr = series.notna() & ~series.map(lambda v: isinstance(v, str))
                _bad(name, column, "non-string values", nonstr, series)
        if not spec.nullable:
            _bad(name, column, "missing values (NaN/None) in a required field", series.isna(), series)
        if spec.kind == "float":
            check_finite(name, column, series)
        if spec.kind == "int" and pd.api.types.is_unsigned_integer_dtype(series):
            # checked in the original dtype: a cast first would wrap 2**64 - 1 to -1
            _bad(name, column, f"value above the int64 maximum {np.iinfo(np.int64).max}",
                 series.to_numpy() > np.iinfo(np.int64).max, series)
    # a frame of its own: under pandas' copy-on-write (always on from pandas 3) the selection shares the
    # caller's columns until either side writes (no up-front copy of millions of events); a deep copy otherwise
    out = df[list(schema)].copy(deep=not _COPY_ON_WRITE)
    for column, spec in schema.items():
        out[column] = out[column].astype(CANONICAL_DTYPE[spec.kind]) if spec.kind != "datetime" else (
            naive_utc_ns(out[column], name, column)
        )
    return out


def check_finite(frame: str, column: str, values: pd.Series, allow_missing: bool = True) -> None:
    """No ``inf``/``-inf`` in a numeric column (nor NaN unless ``allow_missing``); else a
    ``DataValidationError`` naming ``frame.column``."""
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    _bad(frame, column, "non-finite value (inf or -inf)", np.isinf(numbers), values)
    if not allow_missing:
        _bad(frame, column, "missing values (NaN/None) in a required field", np.isnan(numbers), values)


def check_event_amounts(events: pd.DataFrame, frame: str = "events") -> None:
    """The rules of the events' ``quantity`` and ``value`` (for those of the two columns present):
    numeric and finite, ``quantity >= 0`` (a purchase's ``>= 1``, never missing), ``value >= 0``
    (NaN allowed but for purchases). ``DataValidationError`` naming the column otherwise."""
    is_purchase = events["event_type"].eq("purchase")
    for column in ("quantity", "value"):
        if column in events.columns and not _KIND_CHECKS["float"](events[column]):
            raise DataValidationError(frame, column, f"wrong dtype {events[column].dtype}, expected a number")
    if "quantity" in events.columns:
        quantity = events["quantity"]
        check_finite(frame, "quantity", quantity, allow_missing=False)
        _bad(frame, "quantity", "negative quantity", quantity < 0, quantity)
        _bad(frame, "quantity", "purchase with quantity < 1", is_purchase & (quantity < 1), quantity)
    if "value" in events.columns:
        value = events["value"]
        check_finite(frame, "value", value)
        _bad(frame, "value", "negative value", value < 0, value)
        _bad(frame, "value", "purchase without a value", is_purchase & value.isna(), value)


def _check_unique(name: str, df: pd.DataFrame, column: str) -> None:
    _bad(name, column, "duplicate ids", df[column].duplicated(keep=False), df[column])
    _bad(name, column, "empty ids", df[column].str.len() == 0, df[column])
    _bad(name, column, f"malformed ids: expected {ID_RULE} (recsys.data.ids)", invalid_id_mask(df[column]),
         df[column])


@dataclass(frozen=True)
class EventIndex:
    """Per-event arrays of a :class:`Dataset` in its events' row order (read-only):
    ``user_row`` / ``product_col`` (int32) the event's row in ``users`` / ``products``,
    ``kind`` (int8) its position in :data:`~recsys.config.EVENT_TYPES`, ``age_days``
    ``(as_of - timestamp)`` in days (float64, ``Series.dt.total_seconds() / 86400``)."""

    user_row: np.ndarray
    product_col: np.ndarray
    kind: np.ndarray
    age_days: np.ndarray


@dataclass
class Dataset:
    """Users, products and events of one world, with the moment ``as_of`` it
    describes. ``personas`` (hidden ground truth of synthetic data, columns
    ``user_id, persona``) and ``meta`` (how the data was made) are optional;
    models must never read ``personas``."""

    users: pd.DataFrame
    products: pd.DataFrame
    events: pd.DataFrame
    as_of: pd.Timestamp
    personas: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    config: RecsysConfig = field(default=DEFAULT_CONFIG, repr=False)

    def __post_init__(self) -> None:
        self.as_of = as_timestamp(self.as_of, "as_of")
        self.users = _check_columns("users", self.users)
        self.products = _check_columns("products", self.products)
        self.events = _check_columns("events", self.events)
        self._validate_users()
        self._validate_products()
        self._validate_events()
        if self.personas is not None:
            self.personas = _check_personas(self.personas)

    # -- validation -----------------------------------------------------------
    def _validate_users(self) -> None:
        u, cfg = self.users, self.config
        _check_unique("users", u, "user_id")
        _bad("users", "age", "age outside 13..110", u["age"].notna() & ~u["age"].between(13, 110), u["age"])
        _bad("users", "region", f"unknown region; allowed {list(cfg.region_names)}",
             ~u["region"].isin(cfg.region_names), u["region"])
        _bad("users", "spending_tier", f"unknown spending tier; allowed {list(cfg.spending_tier_names)}",
             ~u["spending_tier"].isin(cfg.spending_tier_names), u["spending_tier"])
        ps = u["price_sensitivity"]
        _bad("users", "price_sensitivity", "outside 0..1", ps.notna() & ~ps.between(0, 1), ps)

    def _validate_products(self) -> None:
        p = self.products
        _check_unique("products", p, "product_id")
        _bad("products", "price", "non-positive price", ~(p["price"] > 0), p["price"])  # NaN and inf: earlier
        _bad("products", "cost", "non-positive cost", p["cost"].notna() & ~(p["cost"] > 0), p["cost"])
        _bad("products", "stock", "negative stock", p["stock"] < 0, p["stock"])
        allowed = list(SEASONS) + ["none"]
        _bad("products", "peak_season", f"unknown season; allowed {allowed}",
             ~p["peak_season"].isin(allowed), p["peak_season"])

    def _validate_events(self) -> None:
        e = self.events
        _bad("events", "event_type", f"unknown event type; allowed {list(EVENT_TYPES)}",
             ~e["event_type"].isin(EVENT_TYPES), e["event_type"])
        _bad("events", "user_id", "references unknown users", ~e["user_id"].isin(self.users["user_id"]), e["user_id"])
        _bad("events", "product_id", "references unknown products",
             ~e["product_id"].isin(self.products["product_id"]), e["product_id"])
        _bad("events", "timestamp", f"event time after the data set's as_of {self.as_of}",
             e["timestamp"] > self.as_of, e["timestamp"])
        check_event_amounts(e)
        is_review = e["event_type"].eq("review")
        rating = e["rating"]
        _bad("events", "rating", "review rating outside 1..5", is_review & ~rating.between(1, 5), rating)
        _bad("events", "rating", "rating on an event that is not a review", ~is_review & rating.notna(), rating)

    # -- convenience ----------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_products(self) -> int:
        return len(self.products)

    def user_features(self) -> pd.DataFrame:
        """Users with their ``age_group`` column added."""
        users = self.users.copy()
        users["age_group"] = self.config.age_groups_of(users["age"]).to_numpy()
        return users

    def restrict_events(self, mask: pd.Series | np.ndarray, as_of: pd.Timestamp | None = None) -> Dataset:
        """The same world with only the events where ``mask`` holds (and an
        optional earlier ``as_of``): the basis of temporal splits."""
        return Dataset(
            self.users, self.products, self.events[np.asarray(mask)], as_of if as_of is not None else self.as_of,
            self.personas, dict(self.meta), self.config,
        )

    def _derived(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` cached on this instance while its frames and ``as_of`` stay
        the same objects (a frame is treated as immutable once validated; assigning
        a new frame or ``as_of`` recomputes)."""
        key = (self.users, self.products, self.events, self.personas, self.as_of)
        cache = self.__dict__.setdefault("_derived_cache", {})
        hit = cache.get(name)
        if hit is not None and all(a is b for a, b in zip(hit[0], key, strict=True)):
            return hit[1]
        value = compute()
        cache[name] = (key, value)
        return value

    def event_index(self) -> EventIndex:
        """Per-event arrays shared by every model fitted on this data set (computed
        once, cached; see :class:`EventIndex`)."""
        return self._derived("event_index", self._event_index)

    def release_event_index(self) -> None:
        """Drop the cached :meth:`event_index` (its memory is freed once no caller holds its arrays); the next
        call recomputes the same arrays."""
        if self.__dict__.get("_derived_cache", {}).pop("event_index", None) is not None:
            _trim_heap()

    def _event_index(self) -> EventIndex:
        events = self.events
        rows = pd.Index(self.users["user_id"]).get_indexer(events["user_id"]).astype(np.int32)
        cols = pd.Index(self.products["product_id"]).get_indexer(events["product_id"]).astype(np.int32)
        kind = pd.Index(EVENT_TYPES).get_indexer(events["event_type"]).astype(np.int8)
        age_days = (self.as_of - events["timestamp"]).dt.total_seconds().to_numpy() / 86400.0
        arrays = [rows, cols, kind, age_days]
        for array in arrays:
            array.flags.writeable = False
        return EventIndex(*arrays)

    def content_hash(self) -> str:
        """sha256 over the frames' contents, personas included when present
        (stable across runs; computed once per data set, see :meth:`_derived`)."""
        return str(self._derived("content_hash", self._content_hash))

    def _content_hash(self) -> str:
        digest = hashlib.sha256()
        frames = [self.users, self.products, self.events]
        if self.personas is not None:
            frames.append(self.personas)
        for frame in frames:
            # row hashes depend on their own row only: hashed in chunks of rows (the same bytes, in
            # order), so the temporaries stay small (one pass over 6M events held ~0.6 GiB)
            for start in range(0, len(frame), _HASH_CHUNK):
                rows = frame.iloc[start : start + _HASH_CHUNK]
                digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
            digest.update(",".join(map(str, frame.columns)).encode())
        digest.update(str(self.as_of).encode())
        return digest.hexdigest()

    # -- disk -----------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write parquet files and ``manifest.json`` (rows, sha256 of every
        file, content hash, ``meta``) as ``directory``; byte-identical for the
        same data.

        The files are written into a new sibling directory that then replaces
        ``directory`` (rename), so no file of an earlier save survives (no
        stale ``personas.parquet``) and a failed save leaves the old one
        intact. An existing ``directory`` must be empty or a saved Dataset:
        anything else is refused with ``FileExistsError`` naming it.
        """
        directory = Path(directory)
        _check_replaceable(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = directory.parent / f".{directory.name}-{uuid.uuid4().hex[:12]}"
        staging.mkdir()
        try:
            frames = {"users": self.users, "products": self.products, "events": self.events}
            if self.personas is not None:
                frames["personas"] = self.personas
            files = {}
            for name, frame in frames.items():
                path = staging / f"{name}.parquet"
                frame.to_parquet(path, index=False, engine="pyarrow", compression="zstd")
                files[path.name] = _sha256(path)
            manifest = {
                "format_version": FORMAT_VERSION,
                "as_of": self.as_of.isoformat(),
                "rows": {name: len(frame) for name, frame in frames.items()},
                "files": files,
                "content_hash": self.content_hash(),
                "meta": self.meta,
            }
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
            _replace_directory(staging, directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: str | Path, config: RecsysConfig = DEFAULT_CONFIG) -> Dataset:
        """Read a directory written by :meth:`save`: only the files its
        manifest lists, each checked against its sha256, then the content hash.
        A missing file is a ``FileNotFoundError``, an unreadable or altered one
        a :class:`DataFileError` (a ``DataValidationError``), each naming the file."""
        directory = Path(directory)
        manifest = _read_manifest(directory / "manifest.json")
        files = manifest.get("files")
        required = {f"{name}.parquet" for name in ("users", "products", "events")}
        if not isinstance(files, dict) or not required <= set(files) \
                or not set(files) <= required | {"personas.parquet"}:
            raise DataFileError(directory / "manifest.json", f"'files' must list {sorted(required)} "
                                                              f"(and optionally personas.parquet), got {files!r:.200}")
        frames: dict[str, pd.DataFrame] = {}
        for filename, digest in sorted(files.items()):
            path = directory / filename
            if not path.is_file():
                raise FileNotFoundError(f"{path} listed in {directory / 'manifest.json'} is missing")
            if _sha256(path) != digest:
                raise DataFileError(path, "sha256 differs from manifest.json: the file was changed after saving")
            frames[filename.removesuffix(".parquet")] = _read_parquet(path)
        try:
            dataset = cls(frames["users"], frames["products"], frames["events"],
                          as_of=as_timestamp(manifest.get("as_of"), "manifest.as_of"),
                          personas=frames.get("personas"), meta=manifest.get("meta", {}), config=config)
        except DataValidationError as error:
            path = directory / f"{error.frame}.parquet"
            raise DataFileError(path if path.name in files else directory, str(error)) from None
        if dataset.content_hash() != manifest.get("content_hash"):
            raise DataValidationError("manifest", "content_hash", f"data in {directory} does not match its manifest")
        import pyarrow as pa

        pa.default_memory_pool().release_unused()  # Arrow buffers the checks replaced: back to the system
        return dataset


_DATASET_FILES = frozenset({"users.parquet", "products.parquet", "events.parquet", "personas.parquet",
                            "manifest.json"})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_replaceable(directory: Path) -> None:
    """``directory`` may be replaced by a save: absent, empty, or holding only a saved Dataset's files."""
    if not directory.exists():
        return
    if not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory: cannot save a Dataset there")
    foreign = sorted(p.name for p in directory.iterdir() if p.name not in _DATASET_FILES)
    if foreign:
        raise FileExistsError(f"{directory} holds files that are not a saved Dataset's ({foreign[:5]}): "
                              "refusing to replace it; save into a new or empty directory")


def _replace_directory(staging: Path, directory: Path) -> None:
    """Move ``staging`` to ``directory``, replacing an earlier save (rename the old one aside, then remove it)."""
    if not directory.exists():
        os.rename(staging, directory)
        return
    retired = directory.parent / f".{directory.name}-old-{uuid.uuid4().hex[:12]}"
    os.rename(directory, retired)
    try:
        os.rename(staging, directory)
    except OSError:
        os.rename(retired, directory)  # put the earlier save back
        raise
    shutil.rmtree(retired, ignore_errors=True)


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: not a saved Dataset directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataFileError(path, f"not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise DataFileError(path, f"expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DataValidationError(
            "manifest", "format_version",
            f"format version {manifest.get('format_version')!r} in {path} is not {FORMAT_VERSION}; "
            "regenerate the data",
        )
    return manifest


def _check_personas(personas: object) -> pd.DataFrame:
    """``personas``: a DataFrame whose first column is ``user_id`` (one row per user, any further columns)."""
    if not isinstance(personas, pd.DataFrame):
        raise DataValidationError("personas", None, f"expected a pandas DataFrame with a first column user_id, "
                                                    f"got {type(personas).__name__}")
    repeated = personas.columns[personas.columns.duplicated()]
    if len(repeated):
        raise DataValidationError("personas", str(repeated[0]), f"duplicate column name(s) {list(repeated)}")
    if list(personas.columns[:1]) != ["user_id"]:
        raise DataValidationError("personas", "user_id", "first column must be user_id")
    return personas.reset_index(drop=True)


def _read_parquet(path: Path) -> pd.DataFrame:
    """Read a parquet file with string columns as object arrays that share
    one Python string per distinct value (read dictionary-encoded one row group
    at a time, then expanded by code): a plain ``read_parquet`` plus ``astype(object)``
    makes one string object per row, several GiB for millions of events; one
    pass over a whole column unifies its row groups' dictionaries (a peak of
    ~0.7 GiB for 1.3M distinct session ids)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        handle = pq.ParquetFile(path, read_dictionary=strings)
        columns: dict[str, Any] = {}
        for name in schema.names:  # one column at a time: the Arrow copy of only one is alive at once
            if name in strings:
                columns[name] = pd.Series(_read_strings(handle, name), dtype=object, copy=False)
            else:
                columns[name] = handle.read(columns=[name]).column(name).to_pandas()
            pa.default_memory_pool().release_unused()  # hand the freed Arrow memory back to the system now
    except (pa.ArrowException, OSError) as error:
        raise DataFileError(path, f"not a readable parquet file ({type(error).__name__}: {error})") from None
    return pd.DataFrame(columns, copy=False)


def _read_strings(handle: Any, name: str) -> np.ndarray:
    """String column ``name`` of a ``pyarrow.parquet.ParquetFile`` (opened with
    ``read_dictionary``) as an object array, null as None, one Python string per
    distinct value across all of the column's dictionary chunks."""
    import pyarrow as pa

    column = handle.read(columns=[name]).column(name)  # one dictionary-encoded chunk per row group
    if not pa.types.is_dictionary(column.type):
        column = column.dictionary_encode()
    out = np.empty(len(column), dtype=object)
    share = {}.setdefault  # value -> its first Python string
    start = 0
    for chunk in column.chunks:
        uniques = [share(value, value) for value in chunk.dictionary.to_numpy(zero_copy_only=False).tolist()]
        uniques.append(None)  # code -1: null
        codes = chunk.indices.fill_null(-1).to_numpy()
        out[start : start + len(chunk)] = np.array(uniques, dtype=object)[codes]
        start += len(chunk)
    return out


def drop_invalid_events(
    events: pd.DataFrame, users: pd.DataFrame, products: pd.DataFrame, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove events that reference unknown users/products or lie after
    ``as_of``. Returns ``(kept, report)`` where ``report`` has one row per
    reason: ``reason, rows_removed``."""
    as_of = as_timestamp(as_of, "as_of")
    times = events["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(times):
        times = naive_utc(times)  # the timestamp rule: compared as naive UTC
    reasons = {
        "unknown user_id": ~events["user_id"].isin(users["user_id"]),
        "unknown product_id": ~events["product_id"].isin(products["product_id"]),
        "timestamp after as_of": times > as_of,
    }
    removed = pd.Series(False, index=events.index)
    rows = []
    for reason, mask in reasons.items():
        newly = mask & ~removed
        rows.append({"reason": reason, "rows_removed": int(newly.sum())})
        removed |= mask
    return events[~removed].reset_index(drop=True), pd.DataFrame(rows)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library, looked up once (``find_library`` runs ``ldconfig``/a compiler on each call)."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _trim_heap() -> None:
    """glibc ``malloc_trim(0)``: give the freed heap pages back to the OS. Arrays below glibc's (adaptive, up to
    32 MiB) mmap threshold live on the heap, and freeing them alone does not lower the RSS. No-op elsewhere."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
