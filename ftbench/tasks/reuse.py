"""Tokenised data reused by the runs of one process that share it.

A preset runs every method (and seed) on the same data: tokenising it again for each run cost
seconds per run on a CPU (IMDb at 256 tokens: about 8 s of a smoke run's 4 x 5 steps). The
tasks load their raw data for every run (cheap) and look the tokenised copy up here, under a key
made of everything tokenisation depends on: the task, the tokenizer, the max length and the
task's own settings, and a fingerprint of the loaded data itself. Two runs share a copy exactly
when they would have produced the same one; runs whose seed draws a different split get their
own.

The copies are shared, never modified (the collators and the Trainer only read them). At most
`MAX_ENTRIES` copies and `MAX_TOKENS` tokens are kept; the least recently used go first. The
engine hands a task `SHARED`, or no cache at all when ``FTBENCH_LEVERS_OFF=prepared_cache``
(engine/levers.py).
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_ENTRIES = 4
MAX_TOKENS = 20_000_000  # about 1 GB of token lists; the copy in use is always kept


def fingerprint(*parts: Any) -> str:
    """A digest of plain data (strings, numbers, tuples, lists, dataclasses of them)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))
    return digest.hexdigest()


def tokenizer_key(tokenizer: Any) -> tuple[Any, ...]:
    """What identifies a loaded tokenizer's output: its class, folder, vocabulary and sides."""
    return (type(tokenizer).__name__, str(getattr(tokenizer, "name_or_path", "")),
            len(tokenizer), getattr(tokenizer, "padding_side", None),
            getattr(tokenizer, "truncation_side", None),
            tuple(getattr(tokenizer, "model_input_names", ()) or ()))


class TokenCache:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_tokens: int = MAX_TOKENS) -> None:
        self.max_entries = max_entries
        self.max_tokens = max_tokens
        self._entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Any, make: Callable[[], T], tokens: Callable[[T], int]) -> tuple[T, bool]:
        """The copy stored under ``key`` (and True), or ``make()``'s, stored (and False).
        ``tokens(value)`` sizes a new copy for the budget."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit[0], True
        value = make()
        with self._lock:
            self._entries[key] = (value, tokens(value))
            self._trim(keep=key)
        return value, False

    def _trim(self, keep: Any) -> None:
        while len(self._entries) > 1 and (
                len(self._entries) > self.max_entries
                or sum(n for _, n in self._entries.values()) > self.max_tokens):
            oldest = next(k for k in self._entries if k != keep)
            del self._entries[oldest]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


SHARED = TokenCache()


def cached(cache: TokenCache | None, key: Any, make: Callable[[], T],
           tokens: Callable[[T], int]) -> tuple[T, bool]:
    """`TokenCache.get_or_make`, or ``make()`` when there is no cache."""
    if cache is None:
        return make(), False
    return cache.get_or_make(key, make, tokens)
