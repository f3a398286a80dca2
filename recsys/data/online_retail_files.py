"""Locating and reading the UCI Online Retail file (:mod:`recsys.data.online_retail`).

The shipped ``data/online-retail/online_retail.parquet`` is checked against
:data:`BUNDLED_SHA256`; a parameter or ``$RECSYS_ONLINE_RETAIL`` points
elsewhere. A ``.parquet``, ``.csv`` (encoding detected: :data:`CSV_ENCODINGS`
in order) or ``.xlsx`` file is read unchanged, and its columns are checked
against :data:`RAW_COLUMNS`.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pandas as pd

from recsys.data.dataset import DataValidationError
from recsys.data.errors import DataFileError

__all__ = [
    "BUNDLED_SHA256",
    "CITATION",
    "CSV_ENCODINGS",
    "ENV_VAR",
    "RAW_COLUMNS",
    "check_raw_columns",
    "default_online_retail_path",
    "load_online_retail",
    "resolve_online_retail_path",
    "verify_bundled_file",
]

ENV_VAR = "RECSYS_ONLINE_RETAIL"
UCI_ID = 352
UCI_URL = "https://archive.ics.uci.edu/dataset/352/online+retail"
CITATION = (
    "Daqing Chen, Sai Liang Sain, Kun Guo, 'Data mining for the online retail industry: A case study of "
    "RFM model-based customer segmentation using data mining', Journal of Database Marketing and Customer "
    "Strategy Management 19(3), 2012. UCI Machine Learning Repository, data set id 352 (CC BY 4.0)."
)

RAW_COLUMNS: tuple[str, ...] = (
    "InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country",
)


# -- locating and loading -----------------------------------------------------
BUNDLED_RELATIVE_PATH = Path("data", "online-retail", "online_retail.parquet")
BUNDLED_SHA256 = "e6419d2511c1b227cf958310808d8848cc1ce6e3cd3fa351d4cf677f31f8e1ad"
"""sha256 of the Online Retail parquet the project ships (``data/online-retail/README.md``)."""


def default_online_retail_path() -> Path:
    """The shipped ``data/online-retail/online_retail.parquet``: looked up in the working
    directory and its parents (notebooks run in ``notebooks/``), then beside the package's
    source tree; the first that exists, else the working directory's candidate."""
    cwd = Path.cwd().resolve()
    candidates = [d / BUNDLED_RELATIVE_PATH for d in (cwd, *cwd.parents)]
    candidates.append(Path(__file__).resolve().parents[2] / BUNDLED_RELATIVE_PATH)
    return next((c for c in candidates if c.is_file()), candidates[0])


def verify_bundled_file(path: Path) -> None:
    """Raise :class:`DataValidationError` when the shipped file's sha256 is not :data:`BUNDLED_SHA256`."""
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != BUNDLED_SHA256:
        raise DataValidationError(
            str(path), None,
            f"sha256 {digest} differs from the shipped Online Retail file's {BUNDLED_SHA256} (corrupt or "
            f"replaced; restore it with `git checkout -- data/online-retail`, or pass another file by parameter "
            f"or {ENV_VAR})",
        )


def resolve_online_retail_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path`` if given, else ``$RECSYS_ONLINE_RETAIL`` if set, else the default path."""
    if path is not None and str(path) != "":
        return Path(path).expanduser()
    env = os.environ.get(ENV_VAR, "")
    return Path(env).expanduser() if env else default_online_retail_path()


def _missing_file_message(path: Path) -> str:
    return (
        f"UCI Online Retail file not found at {path}. Download the 'Online Retail' data set "
        f"(UCI Machine Learning Repository, data set id {UCI_ID}, {UCI_URL}; the Excel file 'Online Retail.xlsx' "
        f"or a parquet/CSV export with columns {list(RAW_COLUMNS)}) and pass its path, or set the environment "
        f"variable {ENV_VAR}, or place it at {default_online_retail_path()} (where the project ships it). "
        f"Cite: {CITATION}"
    )


CSV_ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252", "latin-1")
"""Encodings tried in order for a CSV without an explicit ``encoding``; latin-1 decodes any byte."""


def _read_csv(path: Path, encoding: str | None) -> pd.DataFrame:
    """The CSV decoded strictly with ``encoding``, or with the first of
    :data:`CSV_ENCODINGS` that decodes every byte; ``raw.attrs["encoding"]`` records it."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            raise ValueError(f"encoding must be a codec name such as 'utf-8' or 'cp1252', got {encoding!r}") from None
    for candidate in (encoding,) if encoding else CSV_ENCODINGS:
        try:
            raw = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str},
                              encoding="utf-8-sig" if candidate == "utf-8" else candidate)
        except UnicodeDecodeError as error:
            if encoding:
                raise DataFileError(path, f"not valid {encoding} text ({error})") from None
            continue
        raw.attrs["encoding"] = candidate
        return raw
    raise DataFileError(path, f"could not be decoded as any of {list(CSV_ENCODINGS)}")  # latin-1 never fails


def load_online_retail(path: str | os.PathLike[str] | None = None, encoding: str | None = None) -> pd.DataFrame:
    """Read the raw transactions (``.parquet``, ``.csv`` or ``.xlsx``) unchanged.

    ``encoding`` (CSV only): None detects it (see the module docstring); the
    encoding used is in ``raw.attrs["encoding"]`` and then in the cleaning
    report. Raises ``FileNotFoundError`` saying where to get the file when it
    is absent, and ``ValueError`` naming the missing columns when it is not
    the Online Retail table.
    """
    path = resolve_online_retail_path(path)
    if not path.is_file():
        raise FileNotFoundError(_missing_file_message(path))
    if path.parts[-3:] == BUNDLED_RELATIVE_PATH.parts:
        verify_bundled_file(path)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa

        try:
            raw = pd.read_parquet(path)
        except (pa.ArrowException, OSError) as error:
            raise DataFileError(path, f"not a readable parquet file ({type(error).__name__}: {error})") from None
    elif suffix == ".csv":
        try:
            raw = _read_csv(path, encoding)
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
            raise DataFileError(path, f"not a readable CSV file ({type(error).__name__}: {error})") from None
    elif suffix in (".xlsx", ".xls"):
        try:
            raw = pd.read_excel(path, dtype={"InvoiceNo": str, "StockCode": str})
        except ImportError as error:
            raise ImportError(
                f"reading {path.name} needs an Excel reader ({error}); install openpyxl "
                "(pip install openpyxl) or convert the file to .parquet or .csv once"
            ) from error
    else:
        raise ValueError(f"unsupported Online Retail file type {suffix!r} ({path}); expected .parquet, .csv or .xlsx")
    check_raw_columns(raw, str(path))
    return raw


def check_raw_columns(raw: object, where: str) -> None:
    if not isinstance(raw, pd.DataFrame):
        raise ValueError(f"expected the raw Online Retail table as a pandas DataFrame, got {type(raw).__name__}")
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"{where}: missing Online Retail column(s) {missing}; expected {list(RAW_COLUMNS)}")
