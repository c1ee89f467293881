"""Evaluation in batches sorted by length, with the predictions put back in dataset order.

Evaluating the longest examples together and the shortest together pads each batch only to
its own longest sequence, which on short-text data saves most of the padded positions a
dataset-order batch computes (the first batch is also the largest, so an evaluation that
does not fit fails at once). Per-example post-processing (QA span mapping: prediction i
belongs to window i and its question) needs dataset order, so `restore` undoes the sort on
every per-example array before any metric sees it (DESIGN: evaluation results are in
dataset order). The Trainer subclass in `ftbench.engine.measured` uses this for evaluation
and prediction alike; training batches are untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def lengths_of(dataset: Any) -> list[int]:
    """Token counts of a dataset's examples: its own ``lengths()`` if it has one, else the
    length of each example's ``input_ids``."""
    lengths = getattr(dataset, "lengths", None)
    if callable(lengths):
        return [int(n) for n in lengths()]
    return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]


class LengthSortedOrder:
    """The evaluation order (longest first; equal lengths keep dataset order) and its inverse."""

    def __init__(self, lengths: list[int]) -> None:
        keys = -np.asarray(lengths, dtype=np.int64)
        self.order = np.argsort(keys, kind="stable")  # position i evaluates example order[i]
        self.inverse = np.empty_like(self.order)
        self.inverse[self.order] = np.arange(len(self.order))

    def __len__(self) -> int:
        return len(self.order)

    def sampler(self) -> OrderSampler:
        return OrderSampler(self.order.tolist())

    def restore(self, value: Any) -> Any:
        """``value`` (an array with one row per example in the sorted order, or a tuple, list
        or dict of them, or None) with its rows back in dataset order. An array with another
        number of rows holds no per-example order (a scalar, one loss per batch) and is
        returned as it is."""
        if value is None:
            return None
        if isinstance(value, (tuple, list)):
            return type(value)(self.restore(v) for v in value)
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != len(self.order):
            return value
        return array[self.inverse]


class OrderSampler:
    """A fixed order of dataset indices (a `torch.utils.data.Sampler` by protocol)."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
