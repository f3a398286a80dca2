"""A worker's memory after a model is loaded or swapped in (the garbage collector, the allocators)."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

__all__ = ["settle_after_load", "settle_after_swap"]


def settle_after_load() -> None:
    """Make a freshly loaded worker lean and steady.

    * The objects alive now (the model) move to the garbage collector's
      permanent generation (``gc.freeze``): full collections no longer walk
      the model's millions of objects, which otherwise pause a request now
      and then (the p99 latency).
    * The memory freed while loading goes back to the system: loading reads
      parquet and refits Stage 1 and the content model, and the allocators
      keep those pages (about 80 MB of a worker's RSS, thesis model). Arrow's
      pool releases its unused pages; glibc's ``malloc_trim`` its free heap
      (Linux; skipped where there is no glibc).
    """
    import pyarrow as pa

    gc.collect()
    gc.freeze()
    pa.default_memory_pool().release_unused()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None)
        if trim is not None:
            trim(0)


def settle_after_swap() -> None:
    """After a new model replaced a served one in a worker settled by :func:`settle_after_load`:
    the old model's objects are in the permanent generation, where no collection reaches
    their reference cycles, so they go back to the collected generations, are freed, and
    the new model is frozen in turn. Nothing to do in a process that never froze."""
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    settle_after_load()
