"""Side-by-side timing: every implementation of one case is timed in the same
rounds, interleaved, so a noisy neighbour slows all of them alike; we report
the median (and min, max) of the rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    median: float
    min: float
    max: float
    repeats: int
    inner: int  # calls per sample (fast calls are looped so a sample lasts long enough)

    def as_dict(self) -> dict[str, float | int]:
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max, "repeats": self.repeats,
                "calls_per_sample": self.inner}


def measure(fns: dict[str, Callable[[], object]], repeats: int = 7, min_sample: float = 0.02) -> dict[str, Timing]:
    inner: dict[str, int] = {}
    for name, f in fns.items():
        f()  # warm up: page in the data, load the code
        t0 = time.perf_counter()
        f()
        dt = max(time.perf_counter() - t0, 1e-9)
        inner[name] = max(1, int(min_sample / dt))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            k = inner[name]
            t0 = time.perf_counter()
            for _ in range(k):
                f()
            samples[name].append((time.perf_counter() - t0) / k)
    return {name: Timing(statistics.median(s), min(s), max(s), repeats, inner[name]) for name, s in samples.items()}
