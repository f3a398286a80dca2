"""UCI Online Retail (data set id 352): load, clean with a counted report, map onto a :class:`Dataset`.

Source: Daqing Chen, Sai Liang Sain, Kun Guo, "Data mining for the online
retail industry: A case study of RFM model-based customer segmentation using
data mining", Journal of Database Marketing and Customer Strategy Management
19(3), 2012. UCI Machine Learning Repository, data set id 352, licence CC BY
4.0. The project ships the file as ``data/online-retail/online_retail.parquet``
(sha256 :data:`BUNDLED_SHA256`, checked on load); a parameter or the environment
variable ``RECSYS_ONLINE_RETAIL`` points elsewhere. A ``.xlsx`` (as downloaded
from UCI), ``.csv`` or ``.parquet`` file is read.
A CSV is decoded as UTF-8 when it is valid UTF-8, else as cp1252
(Windows Western European, the usual encoding of Excel's CSV exports), else
as latin-1; the encoding used is recorded in ``CleaningReport.encoding``, so
text is never silently garbled.

Cleaning (:func:`clean_online_retail`) removes rows step by step, in this
order, and counts each step (:class:`CleaningReport`):

1. malformed values: missing or unparseable invoice number, stock code,
   invoice date, quantity or unit price (and non-integer quantities); a
   number that is complex, infinite or an integer of 2**53 or more counts as
   unparseable. Invoice dates follow the timestamp rule of
   :mod:`recsys.data.timestamps`: tz-aware -> UTC with the zone dropped,
   naive kept as they are;
2. cancellations: ``InvoiceNo`` starting with ``"C"``;
3. purchases reversed by a cancellation: a purchase line with the same
   customer, stock code and absolute quantity as a later cancellation line;
   cancellations are matched in time order, each to at most one purchase
   (the latest earlier unmatched one). Without this step a cancelled order
   of 80,995 units would stay in the sales;
4. non-standard invoices: an ``InvoiceNo`` that is not all digits (the
   ``"A..."`` bad-debt adjustments);
5. missing customer: no (or a non-numeric) ``CustomerID``;
6. non-positive quantity; 7. non-positive unit price;
8. non-product stock codes: a product code is five digits plus an optional
   one- or two-letter variant suffix (``85123A``, ``15056BL``); every other
   code is a service line or pseudo-product (``POST``, ``DOT``, ``M``, ``C2``,
   ``D``, ``S``, ``BANK CHARGES``, ``AMAZONFEE``, ``CRUK``, ``PADS``, ``B``,
   ``gift_0001_*`` vouchers, ``DCGS*`` marketplace lines). Two product-shaped
   codes are services too and are caught by their description
   (:data:`SERVICE_DESCRIPTIONS`: "Next Day Carriage", "PACKING CHARGE").
   The codes removed are listed in ``CleaningReport.non_product_codes``;
9. duplicate rows: exact repeats of all eight columns (the first is kept).

Mapping (:func:`to_dataset`) -- every rule is stated where it is coded:

- customers -> users ``user_<CustomerID>``: region from the customer's most
  frequent country through :data:`COUNTRY_REGION` (countries not in the table
  -> ``"Other"``, counted in ``meta``); age unknown (NaN, the data has none);
  spending tier by terciles of the customer's total spend (lowest third
  budget, middle mid, top premium; ties broken by customer id);
  price sensitivity unknown (NaN) by default, or with
  ``price_sensitivity="derived"``: ``0.3 + 0.6 * (1 - r)`` where ``r`` in
  0..1 is the customer's rank, ``(rank - 1) / (n - 1)``, by the
  quantity-weighted mean price percentile of the products they bought
  (buyers of cheap products count as more price sensitive; 0.3..0.9 is
  SPEC's range).
- stock codes -> products ``product_<StockCode>``: description = most
  frequent description (ties: alphabetical first); name = the description in
  title case; price = median unit price paid; cost unknown (NaN); stock
  unknown -> ``default_stock`` (a placeholder, not a measurement); an
  assumed ``cost = cost_ratio * price`` only if asked for; category
  from the description by the keyword rules :data:`CATEGORY_RULES` (first
  matching rule wins, none -> ``"Other"``); ``category_scheme="spec"`` maps
  these onto the ten configured categories by :data:`RETAIL_TO_SPEC_CATEGORY`
  so that config priors (regions, age groups, seasonal boosts) apply; tags =
  the matched keywords plus the other scheme's category; peak season from
  seasonal keywords (:data:`SEASON_KEYWORDS`), else ``"none"`` (descriptions
  only, so the label never leaks sales from a test period).
- invoice lines -> purchase events: quantity, ``value = quantity *
  unit_price``, timestamp = invoice date, ``session_id`` = invoice number.
  ``as_of`` = the last invoice time.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from recsys.config import DEFAULT_CONFIG, RecsysConfig
from recsys.data.dataset import Dataset
from recsys.data.online_retail_files import (
    CITATION,
    CSV_ENCODINGS,
    ENV_VAR,
    RAW_COLUMNS,
    UCI_ID,
    check_raw_columns,
    default_online_retail_path,
    load_online_retail,
    resolve_online_retail_path,
    verify_bundled_file,
)
from recsys.data.online_retail_keywords import (
    CATEGORY_RULES,
    COUNTRY_REGION,
    RETAIL_CATEGORIES,
    RETAIL_TO_SPEC_CATEGORY,
    SEASON_KEYWORDS,
    SERVICE_DESCRIPTIONS,
    categorize_description,
    peak_season,
)
from recsys.data.tiers import spending_tiers_by_rank
from recsys.data.timestamps import naive_utc

__all__ = [
    "CATEGORY_RULES",
    "CITATION",
    "CSV_ENCODINGS",
    "COUNTRY_REGION",
    "ENV_VAR",
    "PRODUCT_CODE_PATTERN",
    "SERVICE_DESCRIPTIONS",
    "RAW_COLUMNS",
    "RETAIL_CATEGORIES",
    "RETAIL_TO_SPEC_CATEGORY",
    "SEASON_KEYWORDS",
    "CleaningReport",
    "categorize_description",
    "clean_online_retail",
    "daily_sales",
    "default_online_retail_path",
    "verify_bundled_file",
    "load_online_retail",
    "load_online_retail_dataset",
    "resolve_online_retail_path",
    "retail_config",
    "seasonal_boosts_from_factors",
    "spending_tiers_by_rank",
    "to_dataset",
]

PRODUCT_CODE_PATTERN = re.compile(r"^\d{5}[A-Za-z]{0,2}$")
"""A product stock code: five digits and an optional one- or two-letter variant suffix."""

Scheme = Literal["retail", "spec"]


# -- cleaning -----------------------------------------------------------------
@dataclass
class CleaningReport:
    """What :func:`clean_online_retail` removed, step by step.

    ``steps``: one row per step with ``step, rows_before, rows_removed,
    rows_after, reason`` (rows_after of one step = rows_before of the next).
    ``non_product_codes``: the stock codes removed as non-products, with the
    rows removed (``rows``) and their most frequent description.
    """

    steps: pd.DataFrame
    non_product_codes: pd.DataFrame
    raw_rows: int
    clean_rows: int
    notes: dict[str, int] = field(default_factory=dict)
    encoding: str | None = None
    """The text encoding the raw CSV was decoded with (None: not read from a CSV)."""

    def to_frame(self) -> pd.DataFrame:
        """The step table with a final total row."""
        total = pd.DataFrame([{
            "step": "total", "rows_before": self.raw_rows, "rows_removed": self.raw_rows - self.clean_rows,
            "rows_after": self.clean_rows, "reason": "all steps",
        }])
        return pd.concat([self.steps, total], ignore_index=True)


def _as_str(series: pd.Series) -> pd.Series:
    """Strings stripped of whitespace (integral floats lose their ``.0``);
    missing, empty or 'nan' -> NaN; object dtype."""
    if pd.api.types.is_float_dtype(series):
        integral = series.notna() & np.isfinite(series) & (series % 1 == 0)
        series = series.astype(object).where(~integral, series[integral].astype("int64").astype(object))
    try:
        out = series.astype("string").str.strip()
    except (UnicodeDecodeError, TypeError, ValueError):  # bytes or odd objects: not text, so missing
        out = series.map(lambda v: v if isinstance(v, str) or _is_plain_number(v) else None).astype("string")
        out = out.str.strip()
    out = out.where(~out.isin(["", "nan", "NaN", "None", "<NA>"]), pd.NA)
    return out.astype(object).where(out.notna(), np.nan)


def _is_plain_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


_EXACT_INT = float(2**53)  # floats at or above this are not exact integers (and may not fit int64)


def _real_numbers(values: pd.Series) -> pd.Series:
    """float64 numbers; unparseable, complex (non-zero imaginary part),
    infinite and integral values of 2**53 or more become NaN."""
    numbers = pd.to_numeric(values.astype(object), errors="coerce")
    if pd.api.types.is_complex_dtype(numbers):
        numbers = pd.Series(np.where(numbers.to_numpy().imag == 0, numbers.to_numpy().real, np.nan),
                            index=values.index)
    numbers = numbers.astype("float64")
    return numbers.where(np.isfinite(numbers) & (numbers.abs() < _EXACT_INT))


def _invoice_dates(values: pd.Series) -> pd.Series:
    """datetime64[ns] by the timestamp rule (tz-aware -> UTC, zone dropped;
    naive kept; mixed offsets each converted); unparseable or outside
    datetime64[ns]'s range -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = naive_utc(values)
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)
    inside = parsed.isna() | ((parsed >= pd.Timestamp.min) & (parsed <= pd.Timestamp.max))
    return parsed.where(inside).astype("datetime64[ns]")  # outside the ns range (1677..2262): NaT


def _normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """Coerce every column to its type, turning odd values into NaN (never raising)."""
    df = pd.DataFrame(index=raw.index)
    df["InvoiceNo"] = _as_str(raw["InvoiceNo"])
    df["StockCode"] = _as_str(raw["StockCode"])
    df["Description"] = _as_str(raw["Description"])
    df["Quantity"] = _real_numbers(raw["Quantity"])
    df["InvoiceDate"] = _invoice_dates(raw["InvoiceDate"])
    df["UnitPrice"] = _real_numbers(raw["UnitPrice"])
    df["CustomerID"] = _real_numbers(raw["CustomerID"])
    country = _as_str(raw["Country"])
    df["Country"] = country.fillna("Unspecified")
    return df


def clean_online_retail(raw: pd.DataFrame) -> tuple[pd.DataFrame, CleaningReport]:
    """Clean the raw transactions step by step (see the module docstring).

    Returns the clean lines (columns :data:`RAW_COLUMNS`; ``Quantity`` int64,
    ``CustomerID`` int64, ``InvoiceDate`` datetime64[ns]; original row order)
    and the :class:`CleaningReport`. Odd values never raise: they are counted
    in the "malformed values" step.
    """
    check_raw_columns(raw, "raw Online Retail frame")
    df = _normalise(raw.reset_index(drop=True))
    invoice, code = df["InvoiceNo"], df["StockCode"]
    quantity, price = df["Quantity"], df["UnitPrice"]
    is_code = code.notna()
    product_code = is_code & code.astype(str).str.match(PRODUCT_CODE_PATTERN)
    malformed = (
        invoice.isna() | ~is_code | df["InvoiceDate"].isna() | quantity.isna() | price.isna()
        | ~np.isfinite(price.fillna(0.0)) | (quantity.notna() & (quantity % 1 != 0))
    )
    customer_ok = df["CustomerID"].notna() & np.isfinite(df["CustomerID"].fillna(0.0)) & (df["CustomerID"] % 1 == 0)
    is_cancel = invoice.astype(str).str.upper().str.startswith("C") & invoice.notna()
    service = df["Description"].astype(str).str.strip().str.upper().isin(SERVICE_DESCRIPTIONS)
    reversed_purchase = _reversed_purchases(df, is_cancel, customer_ok & ~malformed)
    steps: list[tuple[str, pd.Series, str]] = [
        ("malformed values", malformed,
         "missing/unparseable InvoiceNo, StockCode, InvoiceDate, Quantity or UnitPrice; non-integer Quantity"),
        ("cancellations", is_cancel, "InvoiceNo starts with 'C'"),
        ("purchases reversed by a cancellation", reversed_purchase,
         "same CustomerID, StockCode and |Quantity| as a later cancellation line (matched one to one)"),
        ("non-standard invoices", ~invoice.astype(str).str.fullmatch(r"\d+"),
         "InvoiceNo not all digits (e.g. 'A' bad-debt adjustments)"),
        ("missing customer", ~customer_ok, "CustomerID missing or not an integer"),
        ("non-positive quantity", ~(quantity > 0), "Quantity <= 0 (returns, corrections)"),
        ("non-positive price", ~(price > 0), "UnitPrice <= 0 (free items, write-offs)"),
        ("non-product stock codes", ~product_code | service,
         "StockCode not 5 digits + optional 1-2 letter suffix, or a service description (postage, fees, ...)"),
    ]
    keep = pd.Series(True, index=df.index)
    rows: list[dict[str, object]] = []
    removed_non_product = pd.Series(False, index=df.index)
    for name, mask, reason in steps:
        hit = keep & mask.fillna(True).astype(bool)
        if name == "non-product stock codes":
            removed_non_product = hit
        rows.append(_step_row(name, int(keep.sum()), int(hit.sum()), reason))
        keep &= ~hit
    kept_dup = df[keep].duplicated(keep="first")  # repeats among the rows still kept
    duplicate = pd.Series(False, index=df.index)
    duplicate.loc[kept_dup.index] = kept_dup.to_numpy()
    rows.append(_step_row("duplicate rows", int(keep.sum()), int(duplicate.sum()), "exact repeat of all 8 columns"))
    keep &= ~duplicate

    clean = df[keep].copy()
    clean["Quantity"] = clean["Quantity"].astype("int64")
    clean["CustomerID"] = clean["CustomerID"].astype("int64")
    clean = clean.reset_index(drop=True)
    non_product = _non_product_table(df[removed_non_product])
    report = CleaningReport(
        steps=pd.DataFrame(rows), non_product_codes=non_product, raw_rows=len(df), clean_rows=len(clean),
        notes={"non_product_codes_in_raw": int(code[is_code & (~product_code | service)].nunique())},
        encoding=raw.attrs.get("encoding"),
    )
    return clean, report


def _reversed_purchases(df: pd.DataFrame, is_cancel: pd.Series, usable: pd.Series) -> pd.Series:
    """Purchase lines cancelled later: same customer, stock code and |quantity|.

    Lines of one key are walked in time order (purchases before cancellations
    at the same minute); each cancellation removes the latest earlier purchase
    still unmatched. Returns a boolean mask over ``df``.
    """
    quantity = df["Quantity"]
    cancels = usable & is_cancel & (quantity < 0)
    purchases = usable & ~is_cancel & (quantity > 0)
    out = pd.Series(False, index=df.index)
    if not cancels.any():
        return out
    key_cols = ["CustomerID", "StockCode", "abs_q"]
    lines = df.loc[cancels | purchases, ["CustomerID", "StockCode", "InvoiceDate"]].copy()
    lines["abs_q"] = quantity[cancels | purchases].abs()
    lines["is_cancel"] = cancels[lines.index]
    cancel_keys = lines.loc[lines["is_cancel"], key_cols].drop_duplicates()
    lines = lines.reset_index(names="row").merge(cancel_keys, on=key_cols, how="inner")
    lines = lines.sort_values([*key_cols, "InvoiceDate", "is_cancel", "row"], kind="stable")
    keys = lines[key_cols].to_numpy(dtype=object)
    rows, cancel_flags = lines["row"].to_numpy(), lines["is_cancel"].to_numpy()
    matched: list[int] = []
    open_purchases: list[int] = []
    previous = None
    for key, row, cancel in zip(map(tuple, keys), rows, cancel_flags, strict=True):
        if key != previous:
            open_purchases, previous = [], key
        if not cancel:
            open_purchases.append(int(row))
        elif open_purchases:
            matched.append(open_purchases.pop())
    out.loc[matched] = True
    return out


def _step_row(step: str, before: int, removed: int, reason: str) -> dict[str, object]:
    return {"step": step, "rows_before": before, "rows_removed": removed, "rows_after": before - removed,
            "reason": reason}


def _non_product_table(removed: pd.DataFrame) -> pd.DataFrame:
    if removed.empty:
        return pd.DataFrame({"stock_code": pd.Series(dtype=object), "rows": pd.Series(dtype="int64"),
                             "description": pd.Series(dtype=object)})
    desc = _mode_by(removed, "StockCode", "Description")
    counts = removed.groupby("StockCode").size()
    table = pd.DataFrame({"stock_code": counts.index.astype(object), "rows": counts.to_numpy(dtype="int64")})
    table["description"] = table["stock_code"].map(desc).astype(object)
    return table.sort_values(["rows", "stock_code"], ascending=[False, True], kind="stable").reset_index(drop=True)


def _mode_by(df: pd.DataFrame, key: str, column: str) -> pd.Series:
    """Most frequent non-missing ``column`` per ``key`` (ties: smallest value)."""
    pairs = df[[key, column]].dropna()
    if pairs.empty:
        return pd.Series(dtype=object)
    counts = pairs.groupby([key, column], sort=True).size().rename("n").reset_index()
    counts = counts.sort_values([key, "n", column], ascending=[True, False, True], kind="stable")
    return counts.drop_duplicates(key).set_index(key)[column]


# -- mapping ------------------------------------------------------------------
def _derived_price_sensitivity(clean: pd.DataFrame, product_price: pd.Series) -> pd.Series:
    """``0.3 + 0.6 * (1 - r)``, r = (rank - 1) / (n - 1) of the customer among
    all n by the quantity-weighted mean price percentile of what they bought."""
    price_pct = product_price.rank(pct=True)
    line_pct = clean["StockCode"].map(price_pct).to_numpy() * clean["Quantity"].to_numpy()
    frame = pd.DataFrame({"c": clean["CustomerID"].to_numpy(), "w": line_pct, "q": clean["Quantity"].to_numpy()})
    sums = frame.groupby("c")[["w", "q"]].sum()
    mean_pct = sums["w"] / sums["q"]
    level = (mean_pct.rank(method="average") - 1) / max(len(mean_pct) - 1, 1)  # 0 = cheapest mix, 1 = dearest
    return (0.3 + 0.6 * (1.0 - level)).clip(0.3, 0.9)


def _check_to_dataset_args(clean: pd.DataFrame, category_scheme: object, price_sensitivity: object,
                           default_stock: object, cost_ratio: object, config: RecsysConfig) -> None:
    """:func:`to_dataset`'s arguments; a ``ValueError`` naming the first bad one."""
    if category_scheme not in ("retail", "spec"):
        raise ValueError(f"category_scheme must be 'retail' or 'spec', got {category_scheme!r}")
    if price_sensitivity not in ("unknown", "derived"):
        raise ValueError(f"price_sensitivity must be 'unknown' or 'derived', got {price_sensitivity!r}")
    if isinstance(default_stock, bool) or not isinstance(default_stock, (int, np.integer)) or default_stock < 0:
        raise ValueError(f"default_stock must be a non-negative int, got {default_stock!r}")
    if cost_ratio is not None and (isinstance(cost_ratio, bool) or not isinstance(cost_ratio, (int, float))
                                   or not 0 < cost_ratio < 1):
        raise ValueError(f"cost_ratio must be None or a number in (0, 1), got {cost_ratio!r}")
    check_raw_columns(clean, "clean Online Retail frame")
    if clean.empty:
        raise ValueError("the clean Online Retail frame is empty: nothing to map onto a Dataset")
    if clean["CustomerID"].isna().any() or not (clean["Quantity"] > 0).all() or not (clean["UnitPrice"] > 0).all():
        raise ValueError("to_dataset expects the output of clean_online_retail (customer set, quantity and price > 0)")
    unknown_regions = sorted({"EU", "NA", "Asia", "Other"} - set(config.region_names))
    if unknown_regions:
        raise ValueError(f"config lacks the region(s) {unknown_regions} that COUNTRY_REGION maps onto")


def to_dataset(
    clean: pd.DataFrame,
    *,
    category_scheme: Scheme = "retail",
    price_sensitivity: Literal["unknown", "derived"] = "unknown",
    default_stock: int = 100,
    cost_ratio: float | None = None,
    config: RecsysConfig = DEFAULT_CONFIG,
) -> Dataset:
    """Map clean Online Retail lines onto a :class:`Dataset` (rules in the module docstring).

    ``cost_ratio``: None keeps every cost unknown (NaN); a number in (0, 1)
    sets ``cost = cost_ratio * price``, an *assumed* margin (recorded in
    ``meta``) for the deal guardrails, which never price below cost and
    give no deal where the cost is unknown.
    """
    _check_to_dataset_args(clean, category_scheme, price_sensitivity, default_stock, cost_ratio, config)

    clean = clean.sort_values(["InvoiceDate", "InvoiceNo"], kind="stable").reset_index(drop=True)
    customer = clean["CustomerID"].astype("int64")
    value = clean["Quantity"].astype("float64") * clean["UnitPrice"].astype("float64")

    # products
    products = _products(clean, category_scheme, int(default_stock))
    if cost_ratio is not None:
        products["cost"] = float(cost_ratio) * products["price"]

    # users
    country = _mode_by(clean.assign(CustomerID=customer), "CustomerID", "Country")
    spend = value.groupby(customer).sum().sort_index()
    region = country.reindex(spend.index).map(lambda c: COUNTRY_REGION.get(c, "Other"))
    unmapped = sorted(set(country) - set(COUNTRY_REGION))
    if price_sensitivity == "derived":
        sensitivity = _derived_price_sensitivity(clean, products.set_index("stock_code")["price"]).reindex(spend.index)
    else:
        sensitivity = pd.Series(np.nan, index=spend.index)
    users = pd.DataFrame({
        "user_id": [f"user_{c}" for c in spend.index],
        "age": np.nan,
        "region": region.to_numpy(dtype=object),
        "spending_tier": spending_tiers_by_rank(spend.to_numpy(), config),
        "price_sensitivity": sensitivity.to_numpy(dtype="float64"),
    })

    events = pd.DataFrame({
        "user_id": np.asarray([f"user_{c}" for c in customer], dtype=object),
        "product_id": ("product_" + clean["StockCode"].astype(str)).to_numpy(dtype=object),
        "event_type": "purchase",
        "timestamp": _invoice_dates(clean["InvoiceDate"]).to_numpy(),
        "session_id": clean["InvoiceNo"].astype(str).to_numpy(dtype=object),
        "quantity": clean["Quantity"].astype("int64").to_numpy(),
        "value": value.to_numpy(),
        "rating": np.nan,
    })
    countries_per_customer = clean.groupby(customer)["Country"].nunique()
    meta = {
        "source": f"UCI Online Retail (data set id {UCI_ID})",
        "citation": CITATION,
        "category_scheme": category_scheme,
        "price_sensitivity": price_sensitivity,
        "default_stock": int(default_stock),
        "cost": "unknown" if cost_ratio is None else f"assumed: {float(cost_ratio):g} x price",
        "countries_not_in_region_table": unmapped,
        "customers_with_several_countries": int((countries_per_customer > 1).sum()),
        "products_in_other_category": int((products["retail_category"] == "Other").sum()),
    }
    return Dataset(users, products.drop(columns=["stock_code", "retail_category"]), events,
                   as_of=events["timestamp"].max(), meta=meta, config=config)


def _products(clean: pd.DataFrame, scheme: Scheme, default_stock: int) -> pd.DataFrame:
    codes = pd.Index(sorted(clean["StockCode"].astype(str).unique()), name="StockCode")
    description = _mode_by(clean, "StockCode", "Description").reindex(codes)
    description = description.where(description.notna(), "(no description) " + pd.Series(codes, index=codes))
    price = clean.groupby("StockCode")["UnitPrice"].median().reindex(codes)
    decided = [categorize_description(d) for d in description]
    retail = [c for c, _ in decided]
    spec = [RETAIL_TO_SPEC_CATEGORY[c] for c in retail]
    category = retail if scheme == "retail" else spec
    other = spec if scheme == "retail" else retail
    tags = ["|".join((*kw, o.lower())) for (_, kw), o in zip(decided, other, strict=True)]
    return pd.DataFrame({
        "product_id": [f"product_{c}" for c in codes],
        "name": [str(d).title() for d in description],
        "category": np.asarray(category, dtype=object),
        "description": description.to_numpy(dtype=object),
        "tags": np.asarray(tags, dtype=object),
        "price": price.to_numpy(dtype="float64"),
        "cost": np.nan,
        "stock": np.full(len(codes), default_stock, dtype="int64"),
        "peak_season": np.asarray([peak_season(d) for d in description], dtype=object),
        "stock_code": np.asarray(codes, dtype=object),
        "retail_category": np.asarray(retail, dtype=object),
    })


def load_online_retail_dataset(
    path: str | os.PathLike[str] | None = None, **mapping: object
) -> tuple[Dataset, CleaningReport]:
    """Load, clean and map in one call: ``(dataset, cleaning_report)``;
    ``mapping`` goes to :func:`to_dataset`."""
    clean, report = clean_online_retail(load_online_retail(path))
    return to_dataset(clean, **mapping), report  # type: ignore[arg-type]


# -- the retail categories in the configuration, and daily sales ---------------
def retail_config(
    config: RecsysConfig = DEFAULT_CONFIG,
    seasonal_boosts: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
) -> RecsysConfig:
    """``config`` extended to the retail categories.

    The category list gains :data:`RETAIL_CATEGORIES` (so look-ups accept
    them) and, for each region in ``seasonal_boosts`` (region -> season ->
    categories), that region's seasonal boosts are replaced. Everything else
    stays as configured; in particular the region and age-group category
    preferences keep SPEC's ten categories, none of which this shop sells, so
    they add nothing here -- stated rather than silently remapped.
    """
    categories = tuple(dict.fromkeys((*config.categories, *RETAIL_CATEGORIES)))
    boosts = dict(seasonal_boosts or {})
    unknown = sorted(set(boosts) - set(config.region_names))
    if unknown:
        raise ValueError(f"seasonal_boosts names unknown region(s) {unknown}; known: {list(config.region_names)}")
    regions = tuple(
        dataclasses.replace(r, seasonal_boosts={s: tuple(c) for s, c in boosts[r.name].items()})
        if r.name in boosts else r
        for r in config.regions
    )
    return config.replace(categories=categories, regions=regions)


def seasonal_boosts_from_factors(
    factors: pd.DataFrame, threshold: float = 1.2, min_events: int = 30
) -> dict[str, dict[str, tuple[str, ...]]]:
    """Region -> season -> categories whose measured seasonal factor is at
    least ``threshold`` in cells with at least ``min_events`` events
    (``factors``: the long frame ``region, category, season, events, factor``
    of :class:`recsys.stage2.seasonality.SeasonalFactors`), strongest first."""
    missing = [c for c in ("region", "category", "season", "events", "factor") if c not in factors.columns]
    if missing:
        raise ValueError(f"factors lacks column(s) {missing}; expected SeasonalFactors.factors_")
    if not threshold > 0 or min_events < 0:
        raise ValueError(f"threshold must be > 0 and min_events >= 0, got {threshold!r}, {min_events!r}")
    hot = factors[(factors["factor"] >= threshold) & (factors["events"] >= min_events)]
    hot = hot.sort_values(["region", "season", "factor", "category"], ascending=[True, True, False, True],
                          kind="stable")
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for (region, season), part in hot.groupby(["region", "season"], sort=True):
        out.setdefault(str(region), {})[str(season)] = tuple(part["category"])
    return out


def daily_sales(dataset: Dataset) -> pd.DataFrame:
    """Purchases per calendar day, every day from the first to ``as_of``
    (days without sales are 0): ``date, units, revenue, orders, customers``
    (orders = distinct sessions)."""
    bought = dataset.events[dataset.events["event_type"].eq("purchase")]
    if bought.empty:
        raise ValueError("no purchase events: no daily sales")
    day = bought["timestamp"].dt.normalize()
    per_day = bought.assign(date=day).groupby("date").agg(
        units=("quantity", "sum"), revenue=("value", "sum"), orders=("session_id", "nunique"),
        customers=("user_id", "nunique"))
    days = pd.date_range(day.min(), dataset.as_of.normalize(), freq="D", name="date")
    out = per_day.reindex(days, fill_value=0).reset_index()
    return out.astype({"units": "int64", "orders": "int64", "customers": "int64", "revenue": "float64"})
