"""Helpers the notebooks use to study the system; nothing here is served.

Descriptive analysis (:mod:`~recsys.research.analysis`), diversity frontiers
(:mod:`~recsys.research.diversity`), RFM segments (:mod:`~recsys.research.rfm`), segmentation
methods compared (:mod:`~recsys.research.segmentation_comparison`), hyper-parameter search
(:mod:`~recsys.research.tuning`), off-policy estimators graded on the synthetic world
(:mod:`~recsys.research.ope_simulation`), holdout uplift and Qini curves
(:mod:`~recsys.research.uplift`), a fairness audit of prices (:mod:`~recsys.research.price_fairness`)
and the A/B experiment report (:mod:`~recsys.research.experiment_report`, behind ``recsys experiment
report``).
"""
