"""Models that exist only to be compared with: ``implicit``'s ALS/BPR/cosine k-NN, Surprise.

None of them is served; :mod:`recsys.evaluation.comparison` runs them beside the engine's strategies
under one protocol. EASE, which the engine may serve, lives in :mod:`recsys.models.ease`.
"""
