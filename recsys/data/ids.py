"""The one rule for user and product ids, shared by the ``Dataset`` and the engine.

An id is a ``str`` of 1 to :data:`MAX_ID_LENGTH` characters none of which is
whitespace (``str.isspace``, Unicode-aware), matched over the whole string
(``re.fullmatch``, so a trailing newline is refused too). ``user_0``,
``product_85123A`` and ``customer-17@shop`` are ids; ``""``, ``"Jane Doe"``,
``"x" * 129`` and ``5`` are not. Every id a :class:`~recsys.data.Dataset`
accepts can therefore be served: the engine checks request ids with
:func:`check_user_id` / :func:`check_ids`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from recsys.validation import InvalidRequest

__all__ = ["ID_PATTERN", "ID_REGEX", "ID_RULE", "MAX_ID_LENGTH", "check_ids", "check_requesting_user", "check_user_id",
           "invalid_id_mask", "is_valid_id"]

MAX_ID_LENGTH = 128
ID_PATTERN = re.compile(rf"[^\s]{{1,{MAX_ID_LENGTH}}}")
ID_REGEX = rf"^[^\s]{{1,{MAX_ID_LENGTH}}}$"
"""The rule as an anchored pattern string for JSON Schema and pydantic (whose ``$`` is the end of
the text, so ``"abc\n"`` is refused there too); Python code uses :func:`is_valid_id` (``fullmatch``:
Python's ``$`` would also match before a trailing newline)."""
ID_RULE = f"non-empty strings without whitespace, at most {MAX_ID_LENGTH} chars"
_WHITESPACE = re.compile(r"\s")


def is_valid_id(value: object) -> bool:
    """True when ``value`` is an id by the rule in the module docstring."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def invalid_id_mask(ids: pd.Series) -> np.ndarray:
    """Boolean mask of the entries of ``ids`` that are not ids (missing values included).

    Fast path (the common case, all valid): every entry a ``str`` (a C-level
    ``infer_dtype``), every length in 1..:data:`MAX_ID_LENGTH`, and no
    whitespace in the concatenation of all of them (one C-level regex scan);
    otherwise each entry is checked on its own."""
    values = np.asarray(ids, dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if ((lengths >= 1) & (lengths <= MAX_ID_LENGTH)).all() and _WHITESPACE.search("".join(values)) is None:
            return np.zeros(len(values), dtype=bool)
    return ~np.fromiter((is_valid_id(v) for v in values), dtype=bool, count=len(values))


def check_ids(ids: object, kind: str = "user") -> list[str]:
    """``ids`` (one string or a sequence of them) as a list; a ``ValueError``
    naming the malformed ones otherwise (``kind``: "user" or "product")."""
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, (Sequence, np.ndarray, pd.Series, pd.Index)):
        raise ValueError(f"{kind}_ids must be a string or a sequence of strings, got {type(ids).__name__}")
    values = list(ids)
    bad = [v for v in values if not is_valid_id(v)]
    if bad:
        raise ValueError(f"malformed {kind} id(s) {bad[:3]!r}: expected {ID_RULE}")
    return values


def check_user_id(user_id: object) -> str:
    """One request's ``user_id``: returned unchanged when it is an id, else a
    :class:`~recsys.validation.InvalidRequest` naming it (the engine's per-request check)."""
    if not isinstance(user_id, str):
        raise InvalidRequest(f"user_id must be a string, got {type(user_id).__name__} {user_id!r}")
    if not is_valid_id(user_id):
        raise InvalidRequest(f"malformed user id(s) {[user_id]!r}: expected {ID_RULE}")
    return user_id


def check_requesting_user(user_id: object, requesting_user: str | None) -> str:
    """:func:`check_user_id`, and the authenticated-user rule (SPEC 'Safety rules'): a given
    ``requesting_user`` must be ``user_id`` (``PermissionError`` otherwise)."""
    uid = check_user_id(user_id)
    if requesting_user is not None and requesting_user != uid:
        raise PermissionError(f"user {requesting_user!r} may only see their own recommendations and deals, not {uid!r}")
    return uid
