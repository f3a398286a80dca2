"""recsys: a reproducible multi-stage e-commerce recommender with personalized deals."""

from recsys._version import __version__
from recsys.config import DEFAULT_CONFIG, ConfigError, RecsysConfig
from recsys.data import PROFILES, Dataset, DataValidationError, generate, load_or_generate

__all__ = [
    "DEFAULT_CONFIG",
    "RecommendationEngine",
    "PROFILES",
    "ConfigError",
    "DataValidationError",
    "Dataset",
    "RecsysConfig",
    "__version__",
    "generate",
    "load_or_generate",
]


def __getattr__(name: str):  # lazy: `import recsys` stays light (no scikit-learn, Surprise)
    if name == "RecommendationEngine":
        from recsys.serving.engine import RecommendationEngine

        return RecommendationEngine
    raise AttributeError(f"module 'recsys' has no attribute {name!r}")
