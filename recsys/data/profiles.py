"""Named sizes of the synthetic world: ``ci``, ``thesis`` and ``large``.

A profile is a set of :func:`recsys.data.synthetic.generate` parameters;
``load_or_generate(profile=..., **overrides)`` starts from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """A named parameter set for :func:`recsys.data.synthetic.generate`."""

    name: str
    n_users: int
    n_products: int
    days: int
    activity: float = 1.0
    description: str = ""

    def params(self) -> dict[str, Any]:
        """The ``generate`` keyword arguments of this profile."""
        return {"n_users": self.n_users, "n_products": self.n_products, "days": self.days,
                "activity": self.activity}


PROFILES: Mapping[str, Profile] = MappingProxyType({
    "ci": Profile("ci", 800, 300, 180, 1.0, "small: every notebook runs in seconds (CI, nbval)"),
    "thesis": Profile("thesis", 6000, 1500, 365, 1.0, "the default for reports: about 0.5-1M events"),
    "large": Profile("large", 100_000, 20_000, 365, 0.65, "scale test: at least 5 million events"),
    "xl": Profile("xl", 1_000_000, 100_000, 365, 0.55,
                  "past one machine: at least 50 million events, streamed to partitioned parquet (Spark path)"),
})
"""The data profiles (``xl`` is written by :mod:`recsys.data.synthetic_stream`)."""


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown data profile {name!r}; expected one of {sorted(PROFILES)}") from None
