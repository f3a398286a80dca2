"""What answers requests: the engine facade and the state it serves.

- :mod:`recsys.serving.engine`: :class:`RecommendationEngine`, the design's operations (train, realtime,
  full, deals, segments, model info, demo flow) and the only door the HTTP service uses.
- :mod:`recsys.serving.engine_config`, :mod:`recsys.serving.engine_store`: its configuration and its
  on-disk format.
- :mod:`recsys.serving.stage2_state`, :mod:`recsys.serving.catalogue`: the installed Stage 2 version
  and the catalogue fields of answers.
"""
