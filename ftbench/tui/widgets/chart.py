"""A plotext chart in a widget: redrawn at most a few times a second, at the widget's size.

Callers hand over data with `set_lines` as often as they like; it only marks the chart dirty.
A timer redraws a dirty chart (or one whose size changed) every `REDRAW_S`, so a burst of
steps costs one plotext build, not one per step. Building happens on the UI thread under the
report module's plotext lock; a build takes a few tens of milliseconds at terminal sizes.
"""

from __future__ import annotations

from typing import Sequence

from rich.text import Text
from textual.widgets import Static

REDRAW_S = 0.3

Line = tuple[Sequence[float], Sequence[float]]


class PlotView(Static):
    """Lines drawn with `ftbench.report.charts.line_chart`, or a placeholder line."""

    DEFAULT_CSS = """
    PlotView { height: 1fr; width: 1fr; }
    """

    def __init__(self, placeholder: str = "", *, id: str | None = None,
                 classes: str | None = None) -> None:
        # Drawn dim from the first frame, as the redraw timer draws it: a screen shown before
        # the first tick must look the same as one shown after it.
        super().__init__(Text(placeholder, style="dim"), id=id, classes=classes)
        self.placeholder = placeholder
        self._lines: list[Line] = []
        self._labels = ("", "")
        self._dirty = False
        self._drawn_size: tuple[int, int] | None = None
        self.builds = 0  # how many plotext builds ran (tests check the throttle)

    def on_mount(self) -> None:
        self.set_interval(REDRAW_S, self.redraw_if_needed)

    def set_lines(self, lines: Sequence[Line], *, xlabel: str = "", ylabel: str = "",
                  placeholder: str | None = None) -> None:
        self._lines = [(list(xs), list(ys)) for xs, ys in lines]
        self._labels = (xlabel, ylabel)
        if placeholder is not None:
            self.placeholder = placeholder
        self._dirty = True

    def clear(self, placeholder: str | None = None) -> None:
        self.set_lines([], placeholder=placeholder)

    def redraw_if_needed(self) -> None:
        size = (self.content_size.width, self.content_size.height)
        if not self._dirty and size == self._drawn_size:
            return
        if size[0] < 4 or size[1] < 2:
            return
        self._dirty = False
        self._drawn_size = size
        self.update(self._render_chart(*size))

    def _render_chart(self, width: int, height: int) -> Text:
        if not any(len(xs) for xs, _ in self._lines):
            return Text(self.placeholder, style="dim")
        from ftbench.report.charts import line_chart  # with the first chart drawn, not for the first paint

        self.builds += 1
        text = line_chart(self._lines, width, height, xlabel=self._labels[0],
                          ylabel=self._labels[1], colorless=self.app.no_color)
        return Text.from_ansi(text, no_wrap=True, overflow="crop")
