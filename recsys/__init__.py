"""recsys: a reproducible multi-stage e-commerce recommender with personalized deals."""

from recsys.config import DEFAULT_CONFIG, ConfigError, RecsysConfig
from recsys.data.dataset import DataValidationError, Dataset

__all__ = ["DEFAULT_CONFIG", "ConfigError", "DataValidationError", "Dataset", "RecsysConfig"]
__version__ = "0.1.0"
