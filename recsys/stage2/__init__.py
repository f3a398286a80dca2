"""Stage 2, the hourly batch: the models and the artifact set they publish.

- :mod:`recsys.stage2.segmentation`, :mod:`recsys.stage2.demand`, :mod:`recsys.stage2.seasonality`:
  the user segments (K-Means), per-product demand, seasonal factors.
- :mod:`recsys.stage2.artifacts`: the artifact format (one immutable version directory, column
  schemas checked on load), written by the in-memory job and by :mod:`recsys.spark`.
- :mod:`recsys.stage2.publish`: the atomic publish/pointer protocol shared with the saved engine.
- :mod:`recsys.stage2.job`: the in-memory job, ``run_batch(dataset, out_dir)``.
"""
