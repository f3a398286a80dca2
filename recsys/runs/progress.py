"""Step lines for the long command-line jobs (``recsys generate | batch | tune``), on stderr.

``steps = Steps("batch")`` then ``with steps.step("svd"): ...`` prints ``[recsys batch] svd ...`` when the
step starts and ``[recsys batch] svd done in 12.3 s (total 20.1 s)`` when it ends; ``steps.line(text)``
prints any other progress line (a tuning trial). Lines go to stderr, flushed, so stdout keeps only the
job's result and a log file shows each step as it happens. ``steps.seconds`` holds every step's time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Steps", "timed_table"]


class Steps:
    """Timed steps of one job, reported on ``stream`` (stderr) unless ``enabled`` is false."""

    def __init__(self, job: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.job, self.stream, self.enabled = job, stream, enabled
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def line(self, text: str) -> None:
        """One progress line: ``[recsys <job>] text``."""
        if self.enabled:
            stream = self.stream or sys.stderr
            print(f"[recsys {self.job}] {text}", file=stream, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step ``name`` (a step that raises is reported as failed, and re-raised;
        Ctrl-C is re-raised silently: the command prints its one 'interrupted' line)."""
        self.line(f"{name} ...")
        t0 = time.perf_counter()
        try:
            yield
        except Exception:
            self.line(f"{name} FAILED after {time.perf_counter() - t0:.1f} s")
            raise
        self.seconds[name] = time.perf_counter() - t0
        self.line(f"{name} done in {self.seconds[name]:.1f} s (total {time.perf_counter() - self.started:.1f} s)")


@contextmanager
def timed_table(table: MutableMapping[str, Callable[..., Any]], steps: Steps) -> Iterator[None]:
    """Report each function of a step table (``recsys.stage2.job.STEPS``) as a step while the block runs;
    the table is restored afterwards."""
    original = dict(table)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            with steps.step(name):
                return fn(*args, **kwargs)
        return run

    table.update({name: timed(name, fn) for name, fn in original.items()})
    try:
        yield
    finally:
        table.clear()
        table.update(original)
