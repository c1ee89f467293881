"""``math-problems``: seeded GSM8K-style word problems with exact integer answers, offline.

Each problem follows one person's collection of things through one to three operations
(adding, taking away, multiplying, splitting into equal piles) and asks how many are left.
The response works through the steps the way GSM8K's solutions do, one line per operation,
and ends with ``#### N``, so the same answer extraction scores GSM8K and these problems.

Determinism and disjointness: the eval problems are drawn first from their own stream of
``random.Random(f"math-problems/eval/{seed}")``, then the training problems from
``.../train/{seed}``, skipping any whose prompt is an eval prompt or already drawn; the same
(seed, sizes, difficulty) always gives the same problems, and train and eval never share one.

Difficulty (``data.options``): ``min_ops`` / ``max_ops`` (1-3, the number of operations per
problem, drawn uniformly between them), ``max_start`` (largest starting count, default 40),
``operations`` (which kinds may appear: ``add``, ``sub``, ``mul``, ``div``; default all).
Intermediate and final values stay between 0 and ``MAX_VALUE``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ftbench.errors import DataUnavailable

OPERATIONS: tuple[str, ...] = ("add", "sub", "mul", "div")
MAX_VALUE = 999
NAMES = ("Ava", "Ben", "Carlos", "Dina", "Emma", "Farid", "Grace", "Hugo", "Iris", "Jamal",
         "Kai", "Lena", "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara")
ITEMS = ("apples", "marbles", "stickers", "books", "cookies", "pencils", "coins", "cards",
         "shells", "stamps", "beads", "toy cars", "seeds", "balloons", "buttons")


@dataclass(frozen=True)
class Difficulty:
    min_ops: int = 1
    max_ops: int = 3
    max_start: int = 40
    operations: tuple[str, ...] = OPERATIONS

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Difficulty:
        """The difficulty in ``data.options`` (one-line `DataUnavailable` on a bad value)."""
        values: dict[str, Any] = {}
        for key, low, high in (("min_ops", 1, 3), ("max_ops", 1, 3), ("max_start", 2, 500)):
            if key in options:
                v = options[key]
                if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                    raise DataUnavailable(f"data.options.{key} must be an integer from {low} to "
                                          f"{high}, got {v!r}")
                values[key] = v
        if "operations" in options:
            ops = options["operations"]
            if not isinstance(ops, (list, tuple)) or not ops or any(o not in OPERATIONS for o in ops):
                raise DataUnavailable(f"data.options.operations must be a non-empty list of "
                                      f"{', '.join(OPERATIONS)}, got {ops!r}")
            values["operations"] = tuple(dict.fromkeys(ops))
        made = cls(**values)
        if made.min_ops > made.max_ops:
            raise DataUnavailable(f"data.options.min_ops ({made.min_ops}) is above max_ops "
                                  f"({made.max_ops})")
        return made

    def describe(self) -> str:
        ops = f"{self.min_ops}" if self.min_ops == self.max_ops else f"{self.min_ops}-{self.max_ops}"
        return (f"{ops} operation{'' if ops == '1' else 's'} ({', '.join(self.operations)}), starting counts up to "
                f"{self.max_start}")


@dataclass(frozen=True)
class Problem:
    prompt: str
    response: str
    answer: int
    operations: int


# One step: (sentence in the story, line of the worked answer, new value) or None if it does
# not apply to the current value.
Step = Callable[[random.Random, int, str, str, str], "tuple[str, str, int] | None"]


def _add(r: random.Random, x: int, name: str, items: str, friend: str) -> tuple[str, str, int] | None:
    k = r.randint(2, 30)
    if x + k > MAX_VALUE:
        return None
    story = r.choice((f"{name} buys {k} more {items}.", f"{friend} gives {name} {k} {items}.",
                      f"{name} finds {k} more {items}."))
    return story, f"After getting {k} more, {name} has {x} + {k} = {x + k} {items}.", x + k


def _sub(r: random.Random, x: int, name: str, items: str, friend: str) -> tuple[str, str, int] | None:
    if x < 4:
        return None
    k = r.randint(2, x - 1)
    story = r.choice((f"{name} gives {k} {items} to {friend}.", f"{name} loses {k} {items}.",
                      f"{name} uses {k} of the {items}."))
    return story, f"After {k} are gone, {name} has {x} - {k} = {x - k} {items}.", x - k


def _mul(r: random.Random, x: int, name: str, items: str, friend: str) -> tuple[str, str, int] | None:
    k = r.randint(2, 5)
    if x * k > MAX_VALUE:
        return None
    story = r.choice((f"{name} then collects until there are {k} times as many {items}.",
                      f"The number of {items} {name} has grows to {k} times as many."))
    return story, f"{k} times as many is {x} * {k} = {x * k} {items}.", x * k


def _div(r: random.Random, x: int, name: str, items: str, friend: str) -> tuple[str, str, int] | None:
    divisors = [k for k in range(2, 7) if x % k == 0 and x // k >= 1]
    if not divisors:
        return None
    k = r.choice(divisors)
    story = (f"{name} splits the {items} into {k} equal piles and keeps one pile, "
             f"giving the rest away.")
    return story, f"One of {k} equal piles is {x} / {k} = {x // k} {items}.", x // k


_STEPS: dict[str, Step] = {"add": _add, "sub": _sub, "mul": _mul, "div": _div}


def make_problem(r: random.Random, difficulty: Difficulty) -> Problem:
    """One problem drawn from ``r`` (retries internally until every operation applies)."""
    while True:
        name = r.choice(NAMES)
        friend = r.choice([n for n in NAMES if n != name])
        items = r.choice(ITEMS)
        start = r.randint(2, difficulty.max_start)
        n_ops = r.randint(difficulty.min_ops, difficulty.max_ops)
        value = start
        story = [f"{name} has {start} {items}."]
        work = []
        for _ in range(n_ops):
            step = None
            for _attempt in range(8):
                step = _STEPS[r.choice(difficulty.operations)](r, value, name, items, friend)
                if step is not None:
                    break
            if step is None:
                break
            sentence, line, value = step
            story.append(sentence)
            work.append(line)
        if len(work) != n_ops:
            continue  # the operations allowed could not continue from this value: draw again
        prompt = " ".join(story) + f" How many {items} does {name} have now?"
        response = "\n".join(work + [f"#### {value}"])
        return Problem(prompt, response, value, n_ops)


def generate(train_size: int, eval_size: int, seed: int,
             difficulty: Difficulty = Difficulty()) -> tuple[list[Problem], list[Problem]]:
    """(train, eval) problems, disjoint by prompt and deterministic (see the module doc)."""
    eval_set = _draw(eval_size, random.Random(f"math-problems/eval/{seed}"), difficulty, set())
    taken = {p.prompt for p in eval_set}
    train_set = _draw(train_size, random.Random(f"math-problems/train/{seed}"), difficulty, taken)
    return train_set, eval_set


def _draw(n: int, r: random.Random, difficulty: Difficulty, taken: set[str]) -> list[Problem]:
    out: list[Problem] = []
    misses = 0
    while len(out) < n:
        problem = make_problem(r, difficulty)
        if problem.prompt in taken:
            misses += 1
            if misses > 20 * n + 1000:
                raise DataUnavailable(f"cannot draw {n} distinct problems at this difficulty "
                                      f"({difficulty.describe()}); raise max_start or max_ops")
            continue
        taken.add(problem.prompt)
        out.append(problem)
    return out
