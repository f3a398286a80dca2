"""Data: the validated ``Dataset``, the synthetic generator and real-data loaders."""

from recsys.data.cache import load_or_generate
from recsys.data.dataset import SCHEMA, Dataset, DataValidationError, drop_invalid_events
from recsys.data.profiles import PROFILES, Profile
from recsys.data.synthetic import generate

__all__ = ["PROFILES", "SCHEMA", "DataValidationError", "Dataset", "Profile", "drop_invalid_events", "generate",
           "load_or_generate"]
