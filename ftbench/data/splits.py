"""Cleaning, de-duplication and seeded train/eval splits shared by every classification source.

Why one place: a benchmark is only comparable across methods if every method sees exactly the
same examples, so splitting is a pure function of (examples, seed, sizes) with no hidden state,
and the eval set never shares a text with the training set.

Sampling policy (used by every source):
- The pool is shuffled with ``random.Random(seed)`` and grouped by label, keeping that order.
- The eval set is drawn first, so for one seed and ``eval_size`` it does not depend on
  ``train_size``; the training set is then drawn from what is left. (Only when ``eval_size`` is
  ``None`` and ``train_size`` is set is the training set drawn first and the eval set is all
  the rest. With neither set, 20 % of the pool is the eval set.)
- A requested size smaller than what is available is drawn *class-balanced* (equal counts per
  label, any remainder to the lowest label ids, a class that runs out is topped up from the
  others). ``balanced=False`` draws in shuffled order instead, keeping the natural class ratio.
  "All remaining" (size ``None``) takes everything, so its class ratio is the pool's.
- Sizes the pool cannot supply are shrunk keeping their train:eval ratio (so an offline stand-in
  smaller than the original still gets a sensible split), and a note says so.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Hashable, Sequence

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
DEFAULT_EVAL_FRACTION = 0.2


def clean_text(text: str) -> str:
    """Strip HTML line breaks (IMDB has ``<br />`` everywhere) and normalise whitespace."""
    return " ".join(_BR.sub(" ", text).split())


@dataclass
class Deduped:
    texts: list[str]
    labels: list[int]
    pairs: list[str] | None
    duplicates: int = 0       # extra copies dropped (first copy kept)
    conflicting: int = 0      # texts dropped because they occur with more than one label


def dedupe(texts: Sequence[str], labels: Sequence[int],
           pairs: Sequence[str] | None = None) -> Deduped:
    """Keep the first copy of each (text, pair); drop texts seen with two different labels.

    Why: duplicated reviews would leak between train and eval, and a text labelled both ways is
    noise no method can learn, so it is removed rather than kept with an arbitrary label.
    """
    keys: list[Hashable] = [(t, p) for t, p in zip(texts, pairs)] if pairs is not None else list(texts)
    seen_labels: dict[Hashable, set[int]] = {}
    for key, label in zip(keys, labels):
        seen_labels.setdefault(key, set()).add(label)
    conflicted = {k for k, ls in seen_labels.items() if len(ls) > 1}
    out_t: list[str] = []
    out_l: list[int] = []
    out_p: list[str] = []
    kept: set[Hashable] = set()
    dropped_conflict = 0
    for i, (key, label) in enumerate(zip(keys, labels)):
        if key in conflicted:
            dropped_conflict += 1
            continue
        if key in kept:
            continue
        kept.add(key)
        out_t.append(texts[i])
        out_l.append(label)
        if pairs is not None:
            out_p.append(pairs[i])
    duplicates = len(texts) - dropped_conflict - len(out_t)
    return Deduped(out_t, out_l, out_p if pairs is not None else None, duplicates,
                   len(conflicted))


@dataclass
class Split:
    train: list[int]                 # indices into the pool, in training order
    eval: list[int]
    notes: list[str] = field(default_factory=list)


def take(remaining: list[int], labels: Sequence[int], n: int,
         balanced: bool) -> tuple[list[int], list[int]]:
    """Choose ``n`` indices from ``remaining`` (already shuffled); return (chosen, rest).

    Balanced: an equal share per label, taken in shuffled order; shortfalls of small classes are
    filled from the others. Unbalanced: the first ``n`` in shuffled order (natural class ratio).
    """
    n = max(0, min(n, len(remaining)))
    if not balanced:
        return remaining[:n], remaining[n:]
    groups = group_by_label(labels, remaining)
    order = sorted(groups)
    quota = dict.fromkeys(order, 0)
    left = n
    while left > 0:
        open_labels = [lb for lb in order if quota[lb] < len(groups[lb])]
        share, extra = divmod(left, len(open_labels))
        for j, lb in enumerate(open_labels):
            got = min(share + (1 if j < extra else 0), len(groups[lb]) - quota[lb])
            quota[lb] += got
            left -= got
    chosen = [i for lb in order for i in groups[lb][: quota[lb]]]
    chosen_set = set(chosen)
    return chosen, [i for i in remaining if i not in chosen_set]


def group_by_label(labels: Sequence[int], order: Sequence[int]) -> dict[int, list[int]]:
    """label -> indices, each list in the order given."""
    groups: dict[int, list[int]] = {}
    for i in order:
        groups.setdefault(labels[i], []).append(i)
    return groups


def split_pool(labels: Sequence[int], seed: int, train_size: int | None, eval_size: int | None,
               balanced: bool = True, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Split:
    """Seeded, disjoint train/eval split of one pool (see the module docstring for the rules).

    With neither size given, ``eval_fraction`` of the pool (default 20 %) becomes the eval set.
    """
    n = len(labels)
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    notes: list[str] = []
    train_size, eval_size = _fit_sizes(n, train_size, eval_size, eval_fraction, notes)
    if eval_size is None and train_size is not None:
        # Only the training size is fixed: draw it first (balanced), evaluate on all the rest.
        train_idx, eval_idx = take(order, labels, train_size, balanced)
    else:
        eval_n = eval_size if eval_size is not None else int(round(n * eval_fraction))
        eval_idx, rest = take(order, labels, eval_n, balanced)
        train_idx, _ = take(rest, labels, len(rest) if train_size is None else train_size,
                            balanced)
    rng.shuffle(train_idx)
    rng.shuffle(eval_idx)
    return Split(train_idx, eval_idx, notes)


def _fit_sizes(n: int, train_size: int | None, eval_size: int | None, eval_fraction: float,
               notes: list[str]) -> tuple[int | None, int | None]:
    """Shrink sizes the pool cannot supply, keeping their ratio, and say so.

    Why: ``--offline`` may swap a 1.6M-tweet dataset for a 23k-tweet stand-in; asking it for
    140,000 + 60,000 should give a 70:30 split of what exists, not an empty training set.
    """
    if train_size is not None and eval_size is not None and train_size + eval_size > n:
        total = train_size + eval_size
        new_eval = max(1, eval_size * n // total)
        new_train = n - new_eval
        notes.append(f"asked for {train_size:,} train + {eval_size:,} eval but only {n:,} "
                     f"examples exist: scaled to {new_train:,} + {new_eval:,} (same ratio)")
        return new_train, new_eval
    if train_size is None and eval_size is not None and eval_size >= n:
        new_eval = int(round(n * eval_fraction))
        notes.append(f"asked for {eval_size:,} eval examples but only {n:,} exist: "
                     f"using {new_eval:,} for eval and the rest for training")
        return None, new_eval
    if eval_size is None and train_size is not None and train_size >= n:
        new_train = n - int(round(n * eval_fraction))
        notes.append(f"asked for {train_size:,} train examples but only {n:,} exist: "
                     f"using {new_train:,} for training and the rest for eval")
        return new_train, None
    return train_size, eval_size


def sample(labels: Sequence[int], seed: int, size: int | None, balanced: bool = True,
           what: str = "train") -> tuple[list[int], list[str]]:
    """Seeded sample of one pool that already is a split (hub train / test sets)."""
    rng = random.Random(seed)
    order = list(range(len(labels)))
    rng.shuffle(order)
    notes: list[str] = []
    n = len(labels) if size is None else size
    if n > len(labels):
        notes.append(f"{what}_size {n} clamped to the {len(labels)} examples available")
    idx, _ = take(order, labels, n, balanced)
    rng.shuffle(idx)
    return idx, notes
