"""Bytes of tensors alive at once during a traced forward, and their peak.

`ftbench.plan.trace` hands every tensor an op returns (and every autocast cast it makes) to a
`LiveBytes`. A tensor counts from the moment it is returned until Python drops the last
reference to its storage (views count once, through their base); a ``weakref.finalize`` on
the base takes it off. Meta tensors are freed by the same reference counting as real ones, so
the peak is what the real forward holds at once, less what an op allocates and frees inside
its own kernel (`bump` adds that where the tracer knows it, e.g. attention's ``seq x seq``
scores on the math path). Parameters and buffers are weights, never counted here.

``timeline`` holds the bytes alive after every allocation: the same model code run at two
batch sizes allocates the same tensors in the same order, so the two timelines pair up entry
by entry, each pair a line in the batch size, and the peak at any batch is the highest of
those lines (`peak_lines`), exact even where a batch-independent tensor (a weight's cast)
outweighs the activations at small batches. Batch 1 is not one of the two: some model code
takes a shortcut there (tiny-llama allocates one tensor fewer at batch 1 than at 2 or 3).
"""

from __future__ import annotations

import weakref
from typing import Any


def nbytes(t: Any) -> int:
    return int(t.numel()) * int(t.element_size())


class LiveBytes:
    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude           # ids of parameters and buffers
        self.alive: dict[int, int] = {}  # id(base tensor) -> bytes
        self.now = 0
        self.peak = 0
        self.timeline: list[int] = []

    def add(self, value: Any) -> None:
        """Count the tensors in ``value`` (a tensor, or a tuple / list of them)."""
        import torch  # only as a plan traces: estimate imports this module, and must stay torch-free

        if isinstance(value, (tuple, list)):
            for item in value:
                self.add(item)
            return
        if not isinstance(value, torch.Tensor):
            return
        base = value._base if value._base is not None else value
        key = id(base)
        if key in self.alive or key in self.exclude:
            return
        size = nbytes(base)
        self.alive[key] = size
        self.now += size
        self._mark(self.now)
        weakref.finalize(base, self._free, key)

    def bump(self, extra: int) -> None:
        """An op holds ``extra`` bytes inside its kernel on top of what is alive now."""
        self._mark(self.now + extra)

    def _mark(self, alive: int) -> None:
        self.timeline.append(alive)
        self.peak = max(self.peak, alive)

    def _free(self, key: int) -> None:
        self.now -= self.alive.pop(key, 0)


LINE_BATCHES = (2, 3)  # the batches whose timelines `peak_lines` pairs up


def peak_lines(at_two: list[int], at_three: list[int]) -> list[tuple[int, int]]:
    """(intercept, slope) of the bytes alive at each allocation, from the timelines of the
    same forward at batch 2 and batch 3, with lines no other line dominates left out. None
    of them when the two forwards did not allocate alike (a branch on the batch size): the
    caller falls back to the line through the two peaks."""
    if len(at_two) != len(at_three):
        return []
    lines = sorted({(3 * a - 2 * b, b - a) for a, b in zip(at_two, at_three)}, reverse=True)
    kept: list[tuple[int, int]] = []
    for intercept, slope in lines:  # by intercept, highest first: keep rising slopes only
        if not kept or slope > kept[-1][1]:
            kept.append((intercept, slope))
    return kept
