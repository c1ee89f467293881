"""Is a method distinguishable from the best? A bootstrap interval over seeds.

Why a bootstrap and not Welch's t-test: scipy (the t distribution) is not among ftbench's
dependencies, and with the 3-5 seeds a benchmark affords, a percentile bootstrap of the
difference of means says the same thing without assuming normal seeds. Each group's completed
runs are resampled with replacement, `RESAMPLES` times from a fixed seed (so a report is
reproducible), and the 95 % interval of mean(best) - mean(other) is read off; when it holds 0
the two are *tied*: the seeds cannot tell them apart. A group with fewer than 2 runs is not
judged (one seed says nothing about spread).
"""

from __future__ import annotations

import random
from typing import Sequence

RESAMPLES = 10_000
LEVEL = 0.95
RULE = (f"≈ tied with the best: the {LEVEL:.0%} bootstrap interval of the difference of "
        f"seed means ({RESAMPLES:,} resamples) holds 0")


def tie_note(best: str, any_tied: bool) -> str:
    """The caption line: what ≈ means, or that the seeds tell every judged method apart."""
    if any_tied:
        return f"{RULE} ({best} is the best)"
    return (f"the seeds tell every other method from the best ({best}): the {LEVEL:.0%} bootstrap "
            f"interval of the difference of seed means ({RESAMPLES:,} resamples) excludes 0")


def difference_interval(best: Sequence[float], other: Sequence[float], resamples: int = RESAMPLES,
                        level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(best) - mean(other)."""
    rng = random.Random(seed)
    nb, no = len(best), len(other)
    diffs = sorted(sum(rng.choices(best, k=nb)) / nb - sum(rng.choices(other, k=no)) / no
                   for _ in range(resamples))
    tail = (1 - level) / 2
    lo = diffs[int(tail * (resamples - 1))]
    hi = diffs[int(round((1 - tail) * (resamples - 1)))]
    return lo, hi


def tied(best: Sequence[float], other: Sequence[float]) -> bool | None:
    """True when the seeds cannot tell ``other`` from ``best``; None when either has < 2 runs."""
    if len(best) < 2 or len(other) < 2:
        return None
    lo, hi = difference_interval(best, other)
    return lo <= 0 <= hi
