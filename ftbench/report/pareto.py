"""Pareto fronts: which results are not beaten on both quality and cost at once.

A point *dominates* another when its metric is at least as high and its cost at least as low,
and it is strictly better on one of the two. The front is every point no other point dominates.
Two points with the same metric and the same cost do not dominate each other, so duplicates
are either all on the front or all off it; a point with the same cost and a lower metric (or
the same metric and a higher cost) than another is dominated. Points whose metric or cost is
missing or not finite are left out: they can be neither members nor evidence against others.

The module is pure (no Rich, no plotext) so the CLI, the TUI, the exports and the tests use
the same membership.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Generic, Iterable, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Point(Generic[T]):
    """One candidate: ``item`` is whatever the caller wants back (a group, an index, a name)."""

    item: T
    metric: float  # higher is better
    cost: float    # lower is better

    @property
    def valid(self) -> bool:
        return _finite(self.metric) and _finite(self.cost)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def dominates(a: Point[T], b: Point[T]) -> bool:
    """True when ``a`` is at least as good as ``b`` on both axes and better on one."""
    return (a.metric >= b.metric and a.cost <= b.cost
            and (a.metric > b.metric or a.cost < b.cost))


def pareto_front(points: Iterable[Point[T]]) -> list[Point[T]]:
    """The non-dominated points, cheapest first (then highest metric, then input order).

    One sweep over the points sorted by cost: a point joins the front when its metric beats
    every cheaper-or-equal point seen so far, or when it exactly repeats the cheapest point
    that reached the current best metric (a duplicate, which nothing dominates).
    """
    ordered = sorted(
        (p for p in enumerate(points) if p[1].valid),
        key=lambda ip: (ip[1].cost, -ip[1].metric, ip[0]),
    )
    front: list[Point[T]] = []
    best_metric = -math.inf
    best_cost = math.inf
    for _, point in ordered:
        if point.metric > best_metric:
            front.append(point)
            best_metric, best_cost = point.metric, point.cost
        elif point.metric == best_metric and point.cost == best_cost:
            front.append(point)
    return front
