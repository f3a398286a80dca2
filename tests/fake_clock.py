"""A settable clock for the engine's rate limiter: tests move ``now`` by hand."""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
