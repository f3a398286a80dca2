"""Data: the validated ``Dataset``, the synthetic generator and real-data loaders."""

from recsys.data.dataset import SCHEMA, DataValidationError, Dataset, drop_invalid_events

__all__ = ["SCHEMA", "DataValidationError", "Dataset", "drop_invalid_events"]
