"""A validation split carved out of the training set, for hyperparameter search (``--tune``).

Why: a learning rate chosen by its score on the test set would report that score optimistically;
the trials of a sweep train on part of the training set and are scored on the rest; the eval /
test set is dropped before anything is tokenized. ``DataSpec.options.validation_fraction`` (0 < f < 1)
turns this on: the loaded training set is split, seeded and class-balanced (`splits.take`), into
a smaller training set and a validation set, which replaces the eval set. The seed is
``options.split_seed`` when given, else the run's seed, so every trial sees the same split.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING

from ftbench.data.splits import take
from ftbench.errors import DataUnavailable
from ftbench.spec import DataSpec

if TYPE_CHECKING:
    from ftbench.data.sources import ClassificationData

OPTION = "validation_fraction"


def validation_fraction(spec: DataSpec) -> float | None:
    """The fraction asked for, checked (None: no validation carve)."""
    value = spec.options.get(OPTION)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise DataUnavailable(f"data.options.{OPTION} must be a number between 0 and 1 "
                              f"(exclusive), got {value!r}")
    return float(value)


def validation_size(train_examples: int, fraction: float) -> int:
    """How many of ``train_examples`` the carve takes for validation."""
    return int(round(train_examples * fraction))


def carve_validation(data: "ClassificationData", spec: DataSpec, seed: int) -> "ClassificationData":
    """``data`` with its eval set replaced by a validation carve of its training set; ``data``
    unchanged when ``spec`` asks for none."""
    fraction = validation_fraction(spec)
    if fraction is None:
        return data
    n = len(data.train_labels)
    size = validation_size(n, fraction)
    if size < 1 or size >= n:
        raise DataUnavailable(f"a validation fraction of {fraction:g} of {n} training examples "
                              f"leaves {size} for validation and {n - size} for training")
    order = list(range(n))
    rng = random.Random(int(spec.options.get("split_seed", seed)))
    rng.shuffle(order)
    val_idx, train_idx = take(order, data.train_labels, size, balanced=True)
    pairs = data.train_pairs
    note = (f"validation split: {size} of the {n} training examples (fraction {fraction:g}), "
            f"class-balanced; the eval set ({len(data.eval_labels)} examples) is not used")
    return replace(
        data,
        train_texts=[data.train_texts[i] for i in train_idx],
        train_labels=[data.train_labels[i] for i in train_idx],
        train_pairs=[pairs[i] for i in train_idx] if pairs is not None else None,
        eval_texts=[data.train_texts[i] for i in val_idx],
        eval_labels=[data.train_labels[i] for i in val_idx],
        eval_pairs=[pairs[i] for i in val_idx] if pairs is not None else None,
        source=f"{data.source} (validation carve of the training set)",
        notes=[*data.notes, note],
    )
