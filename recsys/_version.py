"""The package version: the one place it is written (``pyproject.toml`` reads it, ``recsys --version`` prints it)."""

__version__ = "0.1.0"
