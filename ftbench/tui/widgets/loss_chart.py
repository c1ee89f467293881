"""The live training loss: raw (one point per logging step) and smoothed."""

from __future__ import annotations

from ftbench.tui.session import LiveFeed, smooth
from ftbench.tui.widgets.chart import PlotView

WAITING = "The loss appears here at the first logging step."
# plotext colours signals in order (bright blue, then bright green); the legend matches.
TITLE = "Loss [ansi_bright_blue]━[/] raw [ansi_bright_green]━[/] smoothed"


class LossChart(PlotView):
    """Raw loss first, smoothed on top: plotext colours them in that order."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(WAITING, id=id)

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = TITLE

    def show_feed(self, feed: LiveFeed | None) -> None:
        steps = [s for s in list(feed.steps) if s.loss is not None] if feed else []
        if not steps:
            self.clear(WAITING)
            return
        xs = [s.step for s in steps]
        ys = [float(s.loss) for s in steps if s.loss is not None]
        # One logging step (a short run) is drawn as a point, never an empty chart.
        self.set_lines([(xs, ys)] if len(steps) == 1 else [(xs, ys), (xs, smooth(ys))])

    def show_series(self, train: list[dict]) -> None:
        """A saved run's ``series.train`` (the run detail screen)."""
        points = [(p.get("step"), p.get("loss")) for p in train]
        points = [(x, y) for x, y in points if isinstance(x, (int, float))
                  and isinstance(y, (int, float))]
        if not points:
            self.clear("No loss was logged for this run.")
            return
        xs = [x for x, _ in points]
        ys = [float(y) for _, y in points]
        self.set_lines([(xs, ys), (xs, smooth(ys))])
