"""Helpers the notebooks use to study the system; nothing here is served.

Descriptive analysis (:mod:`~recsys.research.analysis`), diversity frontiers
(:mod:`~recsys.research.diversity`), RFM segments (:mod:`~recsys.research.rfm`), segmentation
methods compared (:mod:`~recsys.research.segmentation_comparison`) and hyper-parameter search
(:mod:`~recsys.research.tuning`).
"""
