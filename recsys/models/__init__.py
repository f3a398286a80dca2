"""Recommendation strategies, one module each, all sharing :class:`~recsys.models.base.Recommender`."""
