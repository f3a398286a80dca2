"""UCI Online Retail: cleaning counts on a hand-made raw frame, the mapping, and a smoke test on the real file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data import Dataset
from recsys.data.dataset import DataValidationError
from recsys.data.errors import DataFileError
from recsys.data.online_retail import (
    COUNTRY_REGION,
    ENV_VAR,
    RETAIL_TO_SPEC_CATEGORY,
    categorize_description,
    clean_online_retail,
    default_online_retail_path,
    load_online_retail,
    resolve_online_retail_path,
    spending_tiers_by_rank,
    to_dataset,
)
from recsys.interactions import Interactions

T = pd.Timestamp("2011-03-01 10:00")


def line(inv, code, desc, qty, minutes, price, cust, country="United Kingdom"):
    return {"InvoiceNo": inv, "StockCode": code, "Description": desc, "Quantity": qty,
            "InvoiceDate": T + pd.Timedelta(minutes=minutes), "UnitPrice": price, "CustomerID": cust,
            "Country": country}


def faulty_raw() -> pd.DataFrame:
    """One or more rows for each fault, plus clean rows; the expected counts are in the test."""
    rows = [
        # clean purchases (7 rows, 4 customers, 3 products)
        line("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 0, 2.55, 17850),
        line("536365", "71053", "WHITE METAL LANTERN", 6, 0, 3.39, 17850),
        line("536366", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 2, 60, 2.95, 12583, "France"),
        line("536367", "22423", "REGENCY CAKESTAND 3 TIER", 1, 120, 12.75, 12583, "France"),
        line("536368", "22423", "REGENCY CAKESTAND 3 TIER", 4, 180, 10.95, 13047, "USA"),
        line("536369", "71053", "WHITE METAL LANTERN", 12, 240, 3.39, 12346, "Japan"),
        line("536370", "85123A", "CREAM HANGING HEART T-LIGHT HOLDER", 3, 300, 2.55, 12346, "Japan"),
        # malformed: quantity not a number, missing date, missing stock code (3)
        line("536371", "22423", "REGENCY CAKESTAND 3 TIER", "abc", 310, 12.75, 17850),
        {**line("536372", "22423", "REGENCY CAKESTAND 3 TIER", 1, 0, 12.75, 17850), "InvoiceDate": "not a date"},
        line("536373", None, "?", 1, 320, 1.0, 17850),
        # a purchase of 80 units, cancelled later (1 cancellation + 1 reversed purchase)
        line("536374", "71053", "WHITE METAL LANTERN", 80, 330, 3.00, 13047, "USA"),
        line("C536375", "71053", "WHITE METAL LANTERN", -80, 400, 3.00, 13047, "USA"),
        # a cancellation without a matching purchase (1)
        line("C536376", "22423", "REGENCY CAKESTAND 3 TIER", -2, 410, 12.75, 17850),
        # non-standard invoice (1)
        line("A563185", "B", "Adjust bad debt", 1, 420, 11062.06, None),
        # missing customer (2: NaN and a non-numeric id)
        line("536377", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 430, 2.55, None),
        line("536378", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 440, 2.55, "n/a"),
        # non-positive quantity without a 'C' invoice (1), non-positive price (1)
        line("536379", "71053", "check", -5, 450, 0.0, 17850),
        line("536380", "71053", "WHITE METAL LANTERN", 1, 460, 0.0, 17850),
        # non-product codes (3): postage, manual, and a service line with a product-shaped code
        line("536381", "POST", "POSTAGE", 1, 470, 18.0, 12583, "France"),
        line("536382", "M", "Manual", 1, 480, 0.85, 17850),
        line("536383", "23444", "Next Day Carriage", 1, 490, 15.0, 17850),
        # an exact duplicate of the first row (1)
        line("536365", "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 6, 0, 2.55, 17850),
    ]
    return pd.DataFrame(rows).astype({"CustomerID": object})


EXPECTED_REMOVED = {
    "malformed values": 3,
    "cancellations": 2,
    "purchases reversed by a cancellation": 1,
    "non-standard invoices": 1,
    "missing customer": 2,
    "non-positive quantity": 1,
    "non-positive price": 1,
    "non-product stock codes": 3,
    "duplicate rows": 1,
}


def test_cleaning_counts_every_fault():
    raw = faulty_raw()
    clean, report = clean_online_retail(raw)
    steps = report.steps.set_index("step")
    assert steps["rows_removed"].to_dict() == EXPECTED_REMOVED
    assert report.raw_rows == len(raw) == 22
    assert report.clean_rows == len(clean) == 7
    # the table chains: rows_after of a step is rows_before of the next
    assert (steps["rows_before"] - steps["rows_removed"] == steps["rows_after"]).all()
    assert (steps["rows_after"].to_numpy()[:-1] == steps["rows_before"].to_numpy()[1:]).all()
    table = report.to_frame()
    assert table.iloc[-1].to_dict() == {"step": "total", "rows_before": 22, "rows_removed": 15, "rows_after": 7,
                                        "reason": "all steps"}
    assert set(report.non_product_codes["stock_code"]) == {"POST", "M", "23444"}
    assert report.non_product_codes["rows"].sum() == 3
    assert clean["Quantity"].dtype == "int64" and clean["CustomerID"].dtype == "int64"
    assert (clean["Quantity"] > 0).all() and (clean["UnitPrice"] > 0).all()
    assert not clean["InvoiceNo"].str.startswith("C").any()


def test_cancellation_matches_latest_earlier_purchase_once():
    raw = pd.DataFrame([
        line("1", "71053", "LANTERN", 5, 0, 3.0, 1),
        line("2", "71053", "LANTERN", 5, 10, 3.0, 1),
        line("C3", "71053", "LANTERN", -5, 20, 3.0, 1),
        line("4", "71053", "LANTERN", 5, 30, 3.0, 1),  # after the cancellation: kept
        line("5", "71053", "LANTERN", 4, 5, 3.0, 1),  # other quantity: kept
    ])
    clean, report = clean_online_retail(raw)
    assert sorted(clean["InvoiceNo"]) == ["1", "4", "5"]
    assert report.steps.set_index("step").loc["purchases reversed by a cancellation", "rows_removed"] == 1


def test_cleaning_never_crashes_on_odd_types():
    raw = faulty_raw()
    odd = raw.assign(
        StockCode=[85123, 71053] + list(raw["StockCode"].iloc[2:]),  # ints mixed with strings
        UnitPrice=raw["UnitPrice"].astype(object).where(raw.index != 3, "12,75"),  # unparseable text
        Country=raw["Country"].where(raw.index != 4, None),  # missing country -> 'Unspecified'
    )
    clean, report = clean_online_retail(odd)
    assert report.steps.set_index("step").loc["malformed values", "rows_removed"] == 4
    assert "85123" in set(clean["StockCode"]) and "Unspecified" in set(clean["Country"])
    empty_clean, empty_report = clean_online_retail(raw.iloc[:0])
    assert empty_clean.empty and empty_report.clean_rows == 0


def test_cleaning_rejects_wrong_columns():
    with pytest.raises(ValueError, match=r"missing Online Retail column\(s\) \['Country'\]"):
        clean_online_retail(faulty_raw().drop(columns="Country"))
    with pytest.raises(ValueError, match="pandas DataFrame"):
        clean_online_retail([1, 2, 3])


def test_load_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_online_retail(tmp_path / "nope.parquet")
    message = str(err.value)
    assert "352" in message and "Daqing Chen" in message and ENV_VAR in message and "nope.parquet" in message


def test_path_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_online_retail_path() == default_online_retail_path()
    assert default_online_retail_path().parts[-3:] == ("data", "online-retail", "online_retail.parquet")
    assert default_online_retail_path().is_file()  # shipped with the project
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env.parquet"))
    assert resolve_online_retail_path() == tmp_path / "env.parquet"
    assert resolve_online_retail_path(tmp_path / "arg.csv") == tmp_path / "arg.csv"


def test_load_csv_and_unsupported_suffix(tmp_path):
    raw = faulty_raw().iloc[:7]
    path = tmp_path / "retail.csv"
    raw.to_csv(path, index=False)
    loaded = load_online_retail(path)
    clean, report = clean_online_retail(loaded)
    assert report.clean_rows == 7 and set(clean["StockCode"]) == {"85123A", "71053", "22423"}
    (tmp_path / "retail.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported Online Retail file type '.txt'"):
        load_online_retail(tmp_path / "retail.txt")


def test_to_dataset_mapping():
    clean, _ = clean_online_retail(faulty_raw())
    ds = to_dataset(clean)
    assert isinstance(ds, Dataset)
    users = ds.users.set_index("user_id")
    assert list(users.index) == ["user_12346", "user_12583", "user_13047", "user_17850"]
    assert users["region"].to_dict() == {"user_12346": "Asia", "user_12583": "EU", "user_13047": "NA",
                                         "user_17850": "EU"}
    assert users["age"].isna().all() and users["price_sensitivity"].isna().all()
    # spend: 12346 = 12*3.39 + 3*2.55 = 48.33; 12583 = 5.90 + 12.75 = 18.65; 13047 = 43.80; 17850 = 15.30 + 20.34
    assert users["spending_tier"].to_dict() == {"user_12583": "budget", "user_17850": "budget",
                                                "user_13047": "mid", "user_12346": "premium"}
    products = ds.products.set_index("product_id")
    heart = products.loc["product_85123A"]
    assert heart["description"] == "WHITE HANGING HEART T-LIGHT HOLDER"  # 2 of 3 lines
    assert heart["price"] == pytest.approx(2.55)  # median of 2.55, 2.95, 2.55
    assert heart["category"] == "Candles & Lighting" and "t-light" in heart["tags"].split("|")
    assert products.loc["product_22423", "price"] == pytest.approx((12.75 + 10.95) / 2)
    assert products["cost"].isna().all() and (products["stock"] == 100).all()
    events = ds.events
    assert len(events) == 7 and (events["event_type"] == "purchase").all()
    assert events["value"].to_numpy() == pytest.approx(
        (clean.sort_values(["InvoiceDate", "InvoiceNo"], kind="stable").eval("Quantity * UnitPrice")).to_numpy())
    assert set(events["session_id"]) == set(clean["InvoiceNo"])
    assert ds.as_of == clean["InvoiceDate"].max()
    Interactions.from_dataset(ds)  # the shared matrix builds


def test_to_dataset_options_and_unknown_country():
    clean, _ = clean_online_retail(faulty_raw())
    clean.loc[clean["CustomerID"] == 12346, "Country"] = "Atlantis"
    ds = to_dataset(clean, category_scheme="spec", price_sensitivity="derived", default_stock=7)
    assert ds.meta["countries_not_in_region_table"] == ["Atlantis"]
    assert ds.users.set_index("user_id").loc["user_12346", "region"] == "Other"
    assert set(ds.products["category"]) <= set(ds.config.categories)
    assert ds.products.set_index("product_id").loc["product_85123A", "category"] == "Home & Garden"
    ps = ds.users.set_index("user_id")["price_sensitivity"]
    assert ps.between(0.3, 0.9).all()
    # price percentiles: heart 1/3, lantern 2/3, cake stand 1. 13047 bought only cake stands -> least
    # sensitive; 17850 (6 hearts, 6 lanterns: mean 0.5) bought the cheapest mix -> most sensitive
    assert ps.idxmin() == "user_13047" and ps.idxmax() == "user_17850"
    assert ps["user_13047"] == pytest.approx(0.3) and ps["user_17850"] == pytest.approx(0.9)
    assert (ds.products["stock"] == 7).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"category_scheme": "tfidf"}, "category_scheme"), ({"price_sensitivity": "guess"}, "price_sensitivity"),
     ({"default_stock": -1}, "default_stock"), ({"default_stock": True}, "default_stock")],
)
def test_to_dataset_rejects_bad_options(kwargs, match):
    clean, _ = clean_online_retail(faulty_raw())
    with pytest.raises(ValueError, match=match):
        to_dataset(clean, **kwargs)


def test_to_dataset_rejects_uncleaned_or_empty():
    with pytest.raises(ValueError, match="clean_online_retail"):
        to_dataset(faulty_raw().dropna(subset=["StockCode"]))
    clean, _ = clean_online_retail(faulty_raw())
    with pytest.raises(ValueError, match="empty"):
        to_dataset(clean.iloc[:0])


@pytest.mark.parametrize(
    ("description", "category"),
    [("CHRISTMAS LIGHTS 10 REINDEER", "Seasonal"), ("LUNCH BAG RED RETROSPOT", "Bags"),
     ("WHITE HANGING HEART T-LIGHT HOLDER", "Candles & Lighting"), ("JUMBO BAG PINK POLKADOT", "Bags"),
     ("SET OF 3 CAKE TINS PANTRY DESIGN", "Kitchen & Dining"), ("PACK OF 72 RETROSPOT CAKE CASES", "Kitchen & Dining"),
     ("ASSORTED COLOUR BIRD ORNAMENT", "Garden"), ("SPACEBOY LUNCH BOX", "Kitchen & Dining"),
     ("SILVER DIAMANTE NECKLACE", "Jewellery & Accessories"), ("PARTY BUNTING", "Party"),
     ("ZZZ QQQ", "Other"), (None, "Other")],
)
def test_categorize_description(description, category):
    assert categorize_description(description)[0] == category


def test_every_category_maps_to_a_configured_one():
    from recsys.config import CATEGORIES

    assert set(RETAIL_TO_SPEC_CATEGORY.values()) <= set(CATEGORIES)
    assert set(COUNTRY_REGION.values()) == {"EU", "NA", "Asia", "Other"}


def test_spending_tiers_by_rank():
    tiers = spending_tiers_by_rank(np.array([5.0, 1.0, 3.0, 3.0, 9.0, 0.5]))
    assert list(tiers) == ["premium", "budget", "mid", "mid", "premium", "budget"]
    assert list(spending_tiers_by_rank(np.array([2.0]))) == ["budget"]


REAL = resolve_online_retail_path()


@pytest.mark.skipif(not REAL.is_file(), reason=f"UCI Online Retail file absent at {REAL}")
def test_real_file_smoke():
    raw = load_online_retail(REAL)
    assert len(raw) == 541_909
    clean, report = clean_online_retail(raw)
    steps = report.steps.set_index("step")["rows_removed"]
    assert steps["cancellations"] == int(raw["InvoiceNo"].astype(str).str.startswith("C").sum())
    assert steps["duplicate rows"] > 0 and steps["missing customer"] > 100_000
    assert report.clean_rows == len(clean) == report.raw_rows - steps.sum()
    assert {"POST", "M", "C2", "BANK CHARGES"} <= set(report.non_product_codes["stock_code"])
    ds = to_dataset(clean)
    assert ds.n_users > 4000 and ds.n_products > 3000 and len(ds.events) == len(clean)
    assert set(ds.users["region"]) == {"EU", "NA", "Asia", "Other"}
    assert ds.as_of == pd.Timestamp("2011-12-09 12:50:00")
    assert (ds.products["category"] == "Other").mean() < 0.10  # the keyword rules cover > 90% of products


def test_cost_ratio_is_an_explicit_assumption():
    clean, _ = clean_online_retail(faulty_raw())
    ds = to_dataset(clean, cost_ratio=0.6)
    assert ds.products["cost"].to_numpy() == pytest.approx(0.6 * ds.products["price"].to_numpy())
    assert ds.meta["cost"] == "assumed: 0.6 x price"
    assert to_dataset(clean).meta["cost"] == "unknown"
    for bad in (0, 1.0, -0.2, True, "0.5"):
        with pytest.raises(ValueError, match="cost_ratio"):
            to_dataset(clean, cost_ratio=bad)


def test_daily_sales_fills_empty_days():
    from recsys.data.online_retail import daily_sales

    clean, _ = clean_online_retail(faulty_raw())
    clean.loc[clean["InvoiceNo"] == "536370", "InvoiceDate"] = T + pd.Timedelta(days=2)
    ds = to_dataset(clean)
    sales = daily_sales(ds)
    assert list(sales["date"]) == list(pd.date_range(T.normalize(), periods=3, freq="D"))
    assert sales["units"].tolist() == [6 + 6 + 2 + 1 + 4 + 12, 0, 3]
    assert sales["orders"].tolist() == [5, 0, 1] and sales["customers"].tolist() == [4, 0, 1]
    assert sales["revenue"].sum() == pytest.approx(ds.events["value"].sum())


def test_retail_config_and_measured_boosts():
    from recsys.config import DEFAULT_CONFIG
    from recsys.data.online_retail import RETAIL_CATEGORIES, retail_config, seasonal_boosts_from_factors

    factors = pd.DataFrame({
        "region": ["EU", "EU", "EU", "NA"], "category": ["Seasonal", "Garden", "Bags", "Seasonal"],
        "season": ["autumn", "autumn", "summer", "autumn"], "events": [500, 400, 10, 900],
        "factor": [2.2, 1.25, 1.9, 1.1],
    })
    boosts = seasonal_boosts_from_factors(factors, threshold=1.2, min_events=30)
    assert boosts == {"EU": {"autumn": ("Seasonal", "Garden")}}  # Bags: too few events; NA: below threshold
    config = retail_config(DEFAULT_CONFIG, boosts)
    assert set(RETAIL_CATEGORIES) <= set(config.categories)
    assert config.boosted_categories("EU", "autumn")[:2] == ("Seasonal", "Garden")
    assert "Books" not in config.region("EU").seasonal_boosts.get("winter", ())  # EU boosts replaced
    assert config.region("NA").seasonal_boosts == DEFAULT_CONFIG.region("NA").seasonal_boosts
    with pytest.raises(ValueError, match="unknown region"):
        retail_config(DEFAULT_CONFIG, {"Mars": {"winter": ("Seasonal",)}})
    with pytest.raises(ValueError, match="lacks column"):
        seasonal_boosts_from_factors(factors.drop(columns="events"))


def test_xlsx_without_an_excel_reader_says_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "Online Retail.xlsx"
    path.write_bytes(b"not really excel")

    def no_reader(*args, **kwargs):
        raise ImportError("Missing optional dependency 'openpyxl'")

    monkeypatch.setattr(pd, "read_excel", no_reader)
    with pytest.raises(ImportError, match=r"install openpyxl .* or convert the file to \.parquet or \.csv"):
        load_online_retail(path)


def test_shipped_file_is_checked_by_sha256(tmp_path, monkeypatch):
    """A corrupted copy of the shipped file is refused with a message naming the file and the checksum."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    shipped = default_online_retail_path()
    copy = tmp_path / "data" / "online-retail" / "online_retail.parquet"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(shipped.read_bytes()[:-1] + b"\0")
    monkeypatch.chdir(tmp_path)
    assert default_online_retail_path() == copy
    with pytest.raises(DataValidationError, match=r"online_retail.parquet: sha256 .* differs"):
        load_online_retail()
# -- issue 14.8 / 14.12 / 14.14: time zones, encodings and odd numbers never raise and never garble ------------
def clean_rows(raw: pd.DataFrame) -> pd.DataFrame:
    return raw.iloc[:7].reset_index(drop=True)


def test_timezone_aware_invoice_dates_become_naive_utc():
    raw = clean_rows(faulty_raw())
    naive = pd.to_datetime(raw["InvoiceDate"]).astype("datetime64[ns]")
    aware = raw.assign(InvoiceDate=naive.dt.tz_localize("UTC").dt.tz_convert("America/New_York"))
    clean, report = clean_online_retail(aware)
    assert report.clean_rows == 7 and clean["InvoiceDate"].dtype == "datetime64[ns]"
    assert sorted(clean["InvoiceDate"]) == sorted(naive)
    assert to_dataset(clean).as_of == naive.max()


def test_mixed_offsets_and_single_aware_values_are_converted_one_by_one():
    raw = clean_rows(faulty_raw())
    dates = raw["InvoiceDate"].astype(object)
    dates[0] = "2011-03-01 12:00+02:00"  # 10:00 UTC
    dates[1] = pd.Timestamp("2011-03-01 05:00", tz="America/New_York")  # 10:00 UTC
    clean, report = clean_online_retail(raw.assign(InvoiceDate=dates))
    assert report.steps.set_index("step").loc["malformed values", "rows_removed"] == 0
    first = clean.set_index(["InvoiceNo", "StockCode"]).loc[("536365", "85123A"), "InvoiceDate"]
    assert first == pd.Timestamp("2011-03-01 10:00")


def test_odd_numbers_and_bytes_are_counted_as_malformed_never_kept():
    raw = clean_rows(faulty_raw())
    quantity, price, customer = (raw[c].astype(object) for c in ("Quantity", "UnitPrice", "CustomerID"))
    price[0] = complex(2.55, 1.0)  # would be cut to its real part
    quantity[1] = 10**30  # would wrap around in int64
    customer[2] = 1e300
    invoice = raw["InvoiceNo"].astype(object)
    invoice[3] = b"\xff\xfe"
    clean, report = clean_online_retail(raw.assign(Quantity=quantity, UnitPrice=price, CustomerID=customer,
                                                   InvoiceNo=invoice))
    removed = report.steps.set_index("step")["rows_removed"]
    assert removed["malformed values"] == 3 and removed["missing customer"] == 1
    assert report.clean_rows == 3 and (clean["Quantity"] < 10**6).all()


@pytest.mark.parametrize(("encoding", "recorded"), [("utf-8", "utf-8"), ("latin-1", "cp1252"), ("cp1252", "cp1252")])
def test_csv_encoding_is_detected_and_recorded(tmp_path, encoding, recorded):
    raw = clean_rows(faulty_raw())
    raw.loc[0, "Description"] = "CAFÉ CRÈME MUG – NOËL" if encoding != "latin-1" else "CAFÉ CRÈME MUG NOËL"
    path = tmp_path / "retail.csv"
    raw.to_csv(path, index=False, encoding=encoding)
    loaded = load_online_retail(path)
    clean, report = clean_online_retail(loaded)
    assert report.encoding == recorded
    assert loaded.loc[0, "Description"] == raw.loc[0, "Description"]
    assert "\ufffd" not in "".join(clean["Description"].dropna())


def test_a_byte_undefined_in_cp1252_falls_back_to_latin1(tmp_path):
    raw = clean_rows(faulty_raw())
    path = tmp_path / "retail.csv"
    raw.assign(Description="MUG").to_csv(path, index=False)
    path.write_bytes(path.read_bytes().replace(b"MUG", b"MUG\x81", 1))
    loaded = load_online_retail(path)
    assert loaded.attrs["encoding"] == "latin-1" and loaded.loc[0, "Description"] == "MUG\x81"


def test_an_explicit_wrong_encoding_names_the_file(tmp_path):
    raw = clean_rows(faulty_raw()).assign(Description="CAFÉ")
    path = tmp_path / "retail.csv"
    raw.to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(DataFileError, match=r"retail\.csv: not valid utf-8 text"):
        load_online_retail(path, encoding="utf-8")
    with pytest.raises(ValueError, match="encoding must be a codec name"):
        load_online_retail(path, encoding="klingon")


def test_to_dataset_accepts_a_timezone_aware_clean_frame():
    clean, _ = clean_online_retail(clean_rows(faulty_raw()))
    aware = clean.assign(InvoiceDate=clean["InvoiceDate"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo"))
    ds, reference = to_dataset(aware), to_dataset(clean)
    assert ds.as_of == reference.as_of and ds.content_hash() == reference.content_hash()


def test_invoice_dates_outside_the_ns_range_are_malformed():
    raw = clean_rows(faulty_raw())
    dates = raw["InvoiceDate"].astype(object)
    dates[0] = pd.Timestamp("2263-01-01")
    dates[1] = "1500-06-01 10:00"
    clean, report = clean_online_retail(raw.assign(InvoiceDate=dates))
    assert report.steps.set_index("step").loc["malformed values", "rows_removed"] == 2 and report.clean_rows == 5
    seconds = raw.assign(InvoiceDate=raw["InvoiceDate"].astype("datetime64[s]"))
    seconds.loc[2, "InvoiceDate"] = np.datetime64("3000-01-01", "s")
    assert clean_online_retail(seconds)[1].steps.set_index("step").loc["malformed values", "rows_removed"] == 1


@pytest.mark.parametrize(("name", "content", "problem"), [
    ("retail.parquet", b"PAR1 not parquet at all", "not a readable parquet file"),
    ("retail.csv", b"", "not a readable CSV file"),
    ("retail.csv", b'InvoiceNo,StockCode\n"536365,85123A\n', "not a readable CSV file"),
])
def test_an_unreadable_raw_file_is_named(tmp_path, name, content, problem):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataFileError, match=rf"{name}: {problem}"):
        load_online_retail(tmp_path / name)
