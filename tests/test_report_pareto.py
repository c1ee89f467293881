"""Property test: the Pareto front is exactly the set of non-dominated points."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ftbench.report.pareto import Point, dominates, pareto_front

# Few distinct values, so ties and exact duplicates are common, not rare.
values = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]),
                   st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
points = st.lists(st.tuples(values, values), max_size=30)


@settings(max_examples=300, deadline=None)
@given(points)
def test_front_is_exactly_the_non_dominated_points(raw):
    pts = [Point(i, metric, cost) for i, (metric, cost) in enumerate(raw)]
    members = {p.item for p in pareto_front(pts)}
    for p in pts:
        dominated = any(dominates(q, p) for q in pts)
        assert (p.item in members) == (not dominated)


@settings(max_examples=200, deadline=None)
@given(points)
def test_front_is_ordered_by_cost_and_rising_in_metric(raw):
    front = pareto_front([Point(i, m, c) for i, (m, c) in enumerate(raw)])
    for a, b in zip(front, front[1:]):
        assert a.cost <= b.cost and a.metric <= b.metric
