"""Models that exist only to be compared with: EASE, ``implicit``'s ALS/BPR/cosine k-NN, Surprise.

None of them is served; :mod:`recsys.evaluation.comparison` runs them beside the engine's strategies
under one protocol.
"""
