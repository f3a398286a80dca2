"""recsys: a reproducible multi-stage e-commerce recommender with personalized deals."""

from recsys.config import DEFAULT_CONFIG, ConfigError, RecsysConfig
from recsys.data import PROFILES, DataValidationError, Dataset, generate, load_or_generate

__all__ = [
    "DEFAULT_CONFIG",
    "PROFILES",
    "ConfigError",
    "DataValidationError",
    "Dataset",
    "RecsysConfig",
    "generate",
    "load_or_generate",
]
__version__ = "0.1.0"
