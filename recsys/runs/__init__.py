"""Running the notebooks and recording what ran: ``recsys run`` (:mod:`~recsys.runs.runner`), typed
notebook parameters, the thesis figure style and byte-stable saving (:mod:`~recsys.runs.reporting`),
the environment record, output paths and the benchmarks' measuring helpers.
"""
