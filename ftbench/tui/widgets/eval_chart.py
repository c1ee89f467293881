"""The eval metric over steps: the task's primary metric (accuracy, or exact match for QA)."""

from __future__ import annotations

from typing import Any

from ftbench.tasks.info import primary_metric_in
from ftbench.tui.session import LiveFeed, primary_eval_key
from ftbench.tui.widgets.chart import PlotView

WAITING = "The eval metric appears here after the first evaluation."


class EvalChart(PlotView):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(WAITING, id=id)
        self.metric: str | None = None

    def show_feed(self, feed: LiveFeed | None, task: str) -> None:
        evals = list(feed.evals) if feed else []
        key = primary_eval_key(task, evals)
        self._set_metric(key)
        if key is None:
            self.clear(WAITING)
            return
        points = [(ev.step, ev.metrics.get(key)) for ev in evals]
        self._plot(points)

    def show_series(self, evals: list[dict[str, Any]], task: str) -> None:
        key = primary_metric_in(task, {k for p in evals for k, v in p.items()
                                       if isinstance(v, (int, float))})
        self._set_metric(key)
        if key is None:
            self.clear("No evaluation was recorded for this run.")
            return
        self._plot([(p.get("step"), p.get(key)) for p in evals])

    def _set_metric(self, key: str | None) -> None:
        self.metric = key
        self.border_title = f"Eval {key}" if key else "Eval"

    def _plot(self, points: list[tuple[Any, Any]]) -> None:
        clean = [(x, float(y)) for x, y in points if isinstance(x, (int, float))
                 and isinstance(y, (int, float)) and not isinstance(y, bool)]
        # One evaluation (a short run) is drawn as a point, never an empty chart.
        self.set_lines([([x for x, _ in clean], [y for _, y in clean])])
