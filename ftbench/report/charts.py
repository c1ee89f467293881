"""Terminal charts of a comparison, drawn with plotext and returned as strings.

Each chart is a `Chart(title, text)`; ``text`` is what plotext built (ANSI colours unless
colourless), so the CLI prints it, the TUI puts it in a widget of the size it asked for, and
``compare --save-charts`` writes it to a file. Nothing here prints.

plotext keeps one global figure, so building is serialised with a lock (the TUI may build
from a worker thread) and the figure is cleared before every chart. plotext 6 replaced the
5.x API (``plt.bar`` ... ``plt.build()``) with ``plt.figure.bar(...)`` signals that are drawn
explicitly; `_Plot` speaks both, so either installed version works.

What the charts show (docs/seeds.md): each method's primary metric with error bars when seeds > 1,
the metric over steps per run, trainable parameters on a log scale, train time, peak memory,
and the Pareto fronts (metric vs trainable parameters, vs peak memory and, where the runs
measured their serving cost, vs latency and vs size on disk) with the
front connected and its members named. Reference figures never enter a chart: they are not
measured here, and a chart mixing them would invite the comparison docs/seeds.md warns against.
"""

from __future__ import annotations

import math
import os
import textwrap
import threading
from typing import Any, NamedTuple, Sequence

from ftbench.report.groups import (
    MEMORY_NAMES, Comparison, Front, Group, Section, fmt_count, fmt_number, fmt_pct,
)
from ftbench.text import printable

_LOCK = threading.Lock()
MIN_WIDTH = 30
MIN_HEIGHT = 8
GROUP_MARKERS = ("•", "x", "+", "o", "*", "#", "@", "%", "&", "=")


class Chart(NamedTuple):
    title: str
    text: str


def no_color_requested() -> bool:
    """https://no-color.org: any non-empty NO_COLOR turns colour off."""
    return bool(os.environ.get("NO_COLOR"))


def _clean(text: str) -> str:
    """Labels come from run files: keep them to one printable line."""
    return printable(text, "?")[:40]


def _metric_name(key: str | None) -> str:
    return (key or "").removeprefix("metrics.")


def nice_ticks(lower: float, upper: float, count: int) -> list[float]:
    """About ``count`` round tick positions (1, 2, 2.5, 5 x 10^k steps) within [lower, upper].

    plotext's own ticks fall on arbitrary values (``4.9e2``, ``29.2``); round ones read faster.
    """
    span = upper - lower
    if not (math.isfinite(span) and span > 0) or count < 1:
        return []
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lower / step - 1e-9)
    ticks = []
    k = first
    while k * step <= upper + span * 1e-9:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """Just enough decimals to write every tick exactly (0.25 -> 2 decimals, 500 -> none)."""
    decimals = next((d for d in range(7) if all(abs(round(t, d) - t) < 1e-9 for t in ticks)), 6)
    if decimals == 0 and abs(value) >= 10_000:
        return fmt_count(value)
    return f"{value:.{decimals}f}"


def power_label(power: int) -> str:
    """Powers of ten as 1, 10, 100, 1K, 10K ... 1B: the labels of a log axis."""
    value = 10 ** power
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if value >= limit:
            return f"{value // limit}{suffix}"
    return str(value)


def _ticks(plot: "_Plot", axis: str, lower: float, upper: float, cells: int) -> None:
    ticks = nice_ticks(lower, upper, max(cells // 10, 2))
    if len(ticks) >= 2:
        plot.ticks(axis, ticks, [tick_label(t, ticks) for t in ticks])


# --- one plot, either plotext API -----------------------------------------------------------

class _Plot:
    """The handful of plotext calls the charts need, for plotext 5.x and 6.x."""

    def __init__(self, width: int, height: int, title: str, colorless: bool) -> None:
        import plotext as plt  # ~0.1 s: loads when a chart is drawn, not when this module is imported

        self.plt = plt
        self.colorless = colorless
        self.v6 = not hasattr(plt, "build")
        self.fig: Any = plt.figure if self.v6 else None
        if self.v6:
            self.fig.clear()
            self.fig.theme("colorless" if colorless else "simple")
            self.fig.plot_size(width, height)
            self.fig.title(title)
        else:
            plt.clear_figure()
            plt.theme("clear" if colorless else "pro")
            plt.plot_size(width, height)
            plt.title(title)

    def hbars(self, labels: Sequence[str], values: Sequence[float]) -> None:
        """Horizontal bars; bar i sits at y = i + 1, counted from the bottom."""
        if self.v6:
            self.fig.draw(self.fig.bar(list(labels), list(values), orientation="h"))
        else:
            self.plt.bar(list(labels), list(values), orientation="h")

    def whiskers(self, values: Sequence[float], errors: Sequence[float]) -> None:
        """± error whiskers on bar i (y = i + 1); bars with no spread get none."""
        shown = [(v, i + 1, e) for i, (v, e) in enumerate(zip(values, errors)) if e > 0]
        if not shown:
            return
        values, ys, errors = ([s[0] for s in shown], [s[1] for s in shown],
                              [s[2] for s in shown])
        if self.v6:
            self.fig.draw(self.fig.error(list(values), ys, [0.0] * len(values), list(errors)))
        else:
            self.plt.error(list(values), ys, xerr=list(errors))

    def text(self, x: float, y: float, label: str, align: str = "left") -> None:
        if self.v6:
            self.fig.draw(self.fig.text(x, y, label, alignment=align))
        else:
            self.plt.text(label, x, y, alignment=align)

    def series(self, xs: Sequence[float], ys: Sequence[float], *, label: str | None = None,
               marker: str | None = None, lines: bool = False) -> None:
        if self.v6:
            signal = self.fig.signal(list(xs), list(ys), marker=marker)
            if lines:
                signal.lines()
            if label:
                signal.label(label)
            self.fig.draw(signal)
        elif lines:
            self.plt.plot(list(xs), list(ys), marker=marker, label=label)
        else:
            self.plt.scatter(list(xs), list(ys), marker=marker, label=label)

    def ticks(self, axis: str, positions: Sequence[float], labels: Sequence[str]) -> None:
        if self.v6:
            self.fig.ruler(axis).ticks(list(positions), list(labels))
        elif axis == "x":
            self.plt.xticks(list(positions), list(labels))
        else:
            self.plt.yticks(list(positions), list(labels))

    def lim(self, axis: str, lower: float, upper: float) -> None:
        if self.v6:
            self.fig.ruler(axis).lim(lower, upper)
        elif axis == "x":
            self.plt.xlim(lower, upper)
        else:
            self.plt.ylim(lower, upper)

    def labels(self, x: str, y: str) -> None:
        if self.v6:
            self.fig.label(x, "x")
            self.fig.label(y, "y")
        else:
            self.plt.xlabel(x)
            self.plt.ylabel(y)

    def build(self) -> str:
        if self.v6:
            text = self.fig.build().string(colorless=self.colorless)
        else:
            text = self.plt.build()
            if self.colorless:
                text = self.plt.uncolorize(text)
        return "\n".join(line.rstrip() for line in text.splitlines())


def _fit(title: str, width: int) -> str:
    """A title plotext will not silently drop: cut to the plot width with an ellipsis."""
    return title if len(title) <= width - 2 else title[: max(width - 3, 1)] + "…"


def _build(width: int, height: int, title: str, colorless: bool, draw: Any) -> str:
    width = max(width, MIN_WIDTH)
    with _LOCK:
        plot = _Plot(width, max(height, MIN_HEIGHT), _fit(title, width), colorless)
        draw(plot)
        return plot.build()


# --- bar charts -----------------------------------------------------------------------------

def _bars(title: str, rows: Sequence[tuple[str, float, float | None, str]], width: int,
          height: int, colorless: bool, *, log: bool = False) -> str:
    """Horizontal bars, first row on top, each labelled with its value (and ± spread).

    ``rows`` are (label, value, std or None, text). With ``log``, bars show log10(value) over
    ticks at powers of ten, because parameter counts span five orders of magnitude.
    """
    rows = list(reversed(rows))  # plotext counts bars from the bottom
    labels = [_clean(r[0]) for r in rows]
    values = [math.log10(r[1]) if log else r[1] for r in rows]
    errors = [0.0 if log or r[2] is None else r[2] for r in rows]
    top = max(v + e for v, e in zip(values, errors)) or 1.0
    widest_text = max(len(r[3]) for r in rows)
    plot_cells = max(width - max(len(lbl) for lbl in labels) - 4, 10)
    # Leave room right of the longest bar for its value text.
    upper = top / max(1.0 - (widest_text + 3) / plot_cells, 0.35)

    def draw(plot: _Plot) -> None:
        plot.hbars(labels, values)
        if any(errors):
            plot.whiskers(values, errors)
        for i, (value, error, row) in enumerate(zip(values, errors, rows)):
            plot.text(value + error + 2 * upper / plot_cells, i + 1, row[3])
        plot.lim("x", 0.0, upper)
        if log:
            powers = list(range(0, int(math.floor(upper)) + 1))
            step = max(1, math.ceil(len(powers) / max(plot_cells // 7, 1)))
            shown = powers[::step]
            plot.ticks("x", shown, [power_label(p) for p in shown])
        else:
            _ticks(plot, "x", 0.0, upper, plot_cells)

    return _build(width, min(height, 2 * len(rows) + 5), title, colorless, draw)


def _stat_text(group: Group, key: str, kind: str, unit: str = "") -> str:
    stat = group.stat(key)
    text = fmt_number(stat.mean, kind) + unit
    if stat.std is not None:
        text += f" ±{fmt_number(stat.std, kind)}"
    if group.n > 1:
        text += f" (n={group.n})"
    return text


def _stat_rows(section: Section, key: str | None, kind: str,
               unit: str = "") -> list[tuple[str, float, float | None, str]]:
    if key is None:
        return []
    return [(g.label, mean, g.stat(key).std, _stat_text(g, key, kind, unit))
            for g in section.groups if (mean := g.mean(key)) is not None]


def metric_bars(section: Section, width: int = 80, height: int = 20,
                colorless: bool | None = None) -> Chart | None:
    """The primary metric per method: mean with ± sample std whiskers when seeds > 1."""
    rows = _stat_rows(section, section.primary_metric, "metric")
    if not rows:
        return None
    name = _metric_name(section.primary_metric)
    title = f"{section.preset}: {name} by method"
    if any(g.n > 1 for g in section.groups):
        title += " (mean ± std)"
    return Chart(title, _bars(title, rows, width, height, _colorless(colorless)))


def params_chart(section: Section, width: int = 80, height: int = 20,
                 colorless: bool | None = None) -> Chart | None:
    """Trainable parameters per method on a log scale, labelled with count and share."""
    rows = []
    for g in section.groups:
        count = g.mean("params.trainable")
        if count is None or count < 1:
            continue
        pct = g.mean("params.trainable_pct")
        text = fmt_count(count) + (f" ({fmt_pct(pct)})" if pct is not None else "")
        rows.append((g.label, count, None, text))
    if not rows:
        return None
    title = f"{section.preset}: trainable parameters (log scale)"
    return Chart(title, _bars(title, rows, width, height, _colorless(colorless), log=True))


def time_chart(section: Section, width: int = 80, height: int = 20,
               colorless: bool | None = None) -> Chart | None:
    rows = _stat_rows(section, "timing.train_s", "seconds", " s")
    if not rows:
        return None
    title = f"{section.preset}: train time (s, excludes evaluation)"
    return Chart(title, _bars(title, rows, width, height, _colorless(colorless)))


def memory_chart(section: Section, width: int = 80, height: int = 20,
                 colorless: bool | None = None) -> Chart | None:
    rows = _stat_rows(section, section.memory_key, "mb", " MB")
    if not rows or section.memory_key is None:
        return None
    title = f"{section.preset}: peak memory ({MEMORY_NAMES[section.memory_key]} MB)"
    return Chart(title, _bars(title, rows, width, height, _colorless(colorless)))


# --- metric over steps ----------------------------------------------------------------------

def curves_chart(section: Section, width: int = 80, height: int = 20,
                 colorless: bool | None = None, x_axis: str = "step") -> Chart | None:
    """The primary metric at each evaluation, one line per run, one marker per method."""
    name = _metric_name(section.primary_metric)
    if not name:
        return None
    return _overlay(section, "eval", name, name, width, height, colorless, x_axis)


def loss_curves_chart(section: Section, width: int = 80, height: int = 20,
                      colorless: bool | None = None, x_axis: str = "step") -> Chart | None:
    """Training loss at each logging step, every run of the section on one chart."""
    return _overlay(section, "train", "loss", "training loss", width, height, colorless, x_axis)


X_AXES = ("step", "time")


def _overlay(section: Section, series: str, key: str, name: str, width: int, height: int,
             colorless: bool | None, x_axis: str) -> Chart | None:
    """One line per run of ``series`` points' ``key`` against step (or train time, ``t``).

    Runs of one group share a marker and one legend entry, so three seeds read as a band
    rather than three unrelated lines. Time is training time (evaluation excluded), as the
    engine records it in every point.
    """
    if x_axis not in X_AXES:
        raise ValueError(f"x axis must be one of {', '.join(X_AXES)}, not {x_axis!r}")
    lines: list[tuple[Group, list[float], list[float]]] = []
    axis = "step" if x_axis == "step" else "train time (s)"
    for group in section.groups:
        for run in group.runs:
            xs, ys = [], []
            points = run.series.get(series, []) if isinstance(run.series, dict) else []
            for point in points if isinstance(points, list) else []:
                if not isinstance(point, dict):
                    continue
                x = point.get("step" if x_axis == "step" else "t")
                if x_axis == "step" and not isinstance(x, (int, float)):
                    x, axis = point.get("epoch"), "step / epoch"  # older or partial points
                y = point.get(key)
                if isinstance(x, (int, float)) and isinstance(y, (int, float)) \
                        and not isinstance(y, bool) and math.isfinite(y) and math.isfinite(x):
                    xs.append(float(x))
                    ys.append(float(y))
            if xs:
                lines.append((group, xs, ys))
    if not lines:
        return None
    over = "steps" if x_axis == "step" else "train time"
    title = f"{section.preset}: {name} over {over} (per run)"
    markers = {id(g): GROUP_MARKERS[i % len(GROUP_MARKERS)] for i, g in enumerate(section.groups)}
    all_y = [y for _, _, ys in lines for y in ys]
    x_all = [x for _, xs, _ in lines for x in xs]
    low, high = min(all_y), max(all_y)
    pad = max((high - low) * 0.1, 0.005)
    x_lo, x_hi = min(x_all), max(x_all)
    single = x_hi == x_lo
    if single:  # one point per run, all at one x: give the axis some width
        x_lo, x_hi = x_lo - 1, x_hi + 1

    def draw(plot: _Plot) -> None:
        for group, xs, ys in lines:
            plot.series(xs, ys, marker=markers[id(group)], lines=len(xs) > 1)
        if single:
            plot.lim("x", x_lo, x_hi)
        plot.lim("y", low - pad, high + pad)
        _ticks(plot, "x", x_lo, x_hi, width - 8)
        plot.labels(axis, name)

    # The key goes under the chart: a legend box inside it would hide the curves' ends.
    key_text = []
    for group in section.groups:
        runs = sum(1 for g, _, _ in lines if g is group)
        if runs:
            key_text.append(f"{markers[id(group)]} {_clean(group.label)}"
                            + (f" ×{runs}" if runs > 1 else ""))
    text = _build(width, height, title, _colorless(colorless), draw)
    return Chart(title, text + "\n" + _wrap("   ".join(key_text), width))


def line_chart(lines: Sequence[tuple[Sequence[float], Sequence[float]]], width: int = 80,
               height: int = 20, *, title: str = "", xlabel: str = "", ylabel: str = "",
               colorless: bool | None = None) -> str:
    """Plain lines over a shared x axis, drawn in order (later ones on top), round ticks.

    For views of one run (the TUI's live loss and eval charts, a saved run's curves): each
    line is (xs, ys); non-finite points are dropped. Colours follow plotext's signal order.
    """
    clean = []
    for xs, ys in lines:
        pts = [(float(x), float(y)) for x, y in zip(xs, ys)
               if isinstance(x, (int, float)) and isinstance(y, (int, float))
               and math.isfinite(x) and math.isfinite(y)]
        if pts:
            clean.append(pts)
    if not clean:
        return ""
    x_all = [x for pts in clean for x, _ in pts]
    y_all = [y for pts in clean for _, y in pts]
    x_lo, x_hi = min(x_all), max(x_all)
    if x_hi == x_lo:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_lo, y_hi = min(y_all), max(y_all)
    pad = max((y_hi - y_lo) * 0.08, abs(y_hi) * 0.01, 1e-6)

    def draw(plot: _Plot) -> None:
        for pts in clean:  # a lone point is a dot: a line through one point draws nothing
            plot.series([x for x, _ in pts], [y for _, y in pts],
                        marker="braille" if len(pts) > 1 else "●", lines=len(pts) > 1)
        plot.lim("x", x_lo, x_hi)
        plot.lim("y", y_lo - pad, y_hi + pad)
        for axis, lower, upper, count in (("x", x_lo, x_hi, max((width - 8) // 10, 2)),
                                          ("y", y_lo - pad, y_hi + pad, max(height // 3, 2))):
            ticks = nice_ticks(lower, upper, count)
            while len(ticks) < 2 and count < 12:  # a narrow range: ask for finer steps
                count += 1
                ticks = nice_ticks(lower, upper, count)
            if len(ticks) >= 2:
                plot.ticks(axis, ticks, [tick_label(t, ticks) for t in ticks])
        if xlabel or ylabel:
            plot.labels(xlabel, ylabel)

    return _build(width, height, title, _colorless(colorless), draw)


# --- Pareto fronts --------------------------------------------------------------------------

def pareto_chart(section: Section, which: str = "params", width: int = 80, height: int = 20,
                 colorless: bool | None = None) -> Chart | None:
    """Metric against trainable parameters (log x), peak memory or training time (causal-lm
    sections), with the front connected.

    Front members are drawn ``●`` and named; the others ``○``, also named, so "why is X not
    on the front" is answered by looking. The caption (not a legend box, which would hide
    points) lists the front in cost order.
    """
    front: Front | None = {"params": section.params_front, "time": section.time_front,
                           "latency": section.latency_front, "size": section.size_front}.get(
        which, section.memory_front)
    if front is None or front.points < 2:
        return None
    log = which == "params"
    members = {id(g) for g in front.members}
    points = [(g, cost, metric) for g in section.groups
              if (metric := g.mean(front.metric)) is not None
              and (cost := g.mean(front.cost)) is not None and (not log or cost >= 1)]
    if len(points) < 2:
        return None

    def x_of(cost: float) -> float:
        return math.log10(cost) if log else cost

    name = _metric_name(front.metric)
    cost_name = "trainable params (log)" if log else "train s" if which == "time" \
        else _serving_cost_name(section) if which == "latency" \
        else "size on disk MB" if which == "size" else f"peak {MEMORY_NAMES[front.cost]} MB"
    title = f"{section.preset}: Pareto front, {name} vs {cost_name.removesuffix(' (log)')}"
    xs = [x_of(c) for _, c, _ in points]
    ys = [m for _, _, m in points]
    x_lo, x_hi = min(xs), max(xs)
    x_pad = max((x_hi - x_lo) * 0.08, 0.5 if log else max(abs(x_hi) * 0.05, 1.0))
    y_lo, y_hi = min(ys), max(ys)
    y_pad = max((y_hi - y_lo) * 0.15, 0.005)
    x_min, x_max = x_lo - x_pad, x_hi + x_pad
    cell = (x_max - x_min) / max(width - 12, 10)

    def draw(plot: _Plot) -> None:
        ordered = [(x_of(g.mean(front.cost) or 0), g.mean(front.metric) or 0.0)
                   for g in front.members if not log or (g.mean(front.cost) or 0) >= 1]
        if len(ordered) > 1:
            plot.series([x for x, _ in ordered], [y for _, y in ordered], marker="braille",
                         lines=True)
        on = [(x, y) for (g, _, _), x, y in zip(points, xs, ys) if id(g) in members]
        off = [(x, y) for (g, _, _), x, y in zip(points, xs, ys) if id(g) not in members]
        if on:
            plot.series([x for x, _ in on], [y for _, y in on], marker="●")
        if off:
            plot.series([x for x, _ in off], [y for _, y in off], marker="○")
        for (group, _, _), x, y in zip(points, xs, ys):
            right_half = x > (x_min + x_max) / 2
            plot.text(x - 2 * cell if right_half else x + 2 * cell, y, _clean(group.label),
                      "right" if right_half else "left")
        plot.lim("x", x_min, x_max)
        plot.lim("y", y_lo - y_pad, y_hi + y_pad)
        if log:
            powers = list(range(math.ceil(x_min), math.floor(x_max) + 1))
            if powers:
                plot.ticks("x", powers, [power_label(p) for p in powers])
        else:
            _ticks(plot, "x", x_min, x_max, width - 8)
        plot.labels(cost_name, name)

    text = _build(width, height, title, _colorless(colorless), draw)
    order = " → ".join(_clean(g.label) for g in front.members)
    caption = f"● front ({len(front.members)} of {front.points}): {order}"
    if len(front.members) < front.points:
        caption += "   ○ dominated"
    return Chart(title, text + "\n" + _wrap(caption, width))


def _serving_cost_name(section: Section) -> str:
    """The latency axis: a batch-1 forward, or a generated token for a causal LM."""
    return "ms per token (b1)" if section.task == "causal-lm" else "latency ms (b1)"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, max(width, MIN_WIDTH), subsequent_indent="  "))


# --- all of them ----------------------------------------------------------------------------

def _colorless(colorless: bool | None) -> bool:
    return no_color_requested() if colorless is None else colorless


def section_charts(section: Section, width: int = 80, height: int = 20,
                   colorless: bool | None = None, x_axis: str = "step") -> list[Chart]:
    """Every chart that has data for one section, in reading order. ``x_axis`` ("step" or
    "time") is the x of the overlaid curves (eval metric and training loss, every run)."""
    makers = (
        lambda: metric_bars(section, width, height, colorless),
        lambda: curves_chart(section, width, height, colorless, x_axis),
        lambda: loss_curves_chart(section, width, height, colorless, x_axis),
        lambda: params_chart(section, width, height, colorless),
        lambda: time_chart(section, width, height, colorless),
        lambda: memory_chart(section, width, height, colorless),
        lambda: pareto_chart(section, "params", width, height, colorless),
        lambda: pareto_chart(section, "memory", width, height, colorless),
        lambda: pareto_chart(section, "time", width, height, colorless),   # causal-lm only
        lambda: pareto_chart(section, "latency", width, height, colorless),  # serving measured
        lambda: pareto_chart(section, "size", width, height, colorless),
    )
    return [chart for make in makers if (chart := make()) is not None]


def charts(comparison: Comparison, width: int = 80, height: int = 20,
           colorless: bool | None = None, x_axis: str = "step") -> list[Chart]:
    """All charts of a comparison, sized ``width`` x ``height`` cells (bar charts may be
    shorter: two rows per bar). ``colorless`` None follows NO_COLOR."""
    return [c for s in comparison.sections
            for c in section_charts(s, width, height, colorless, x_axis)]


def charts_text(items: Sequence[Chart]) -> str:
    """Charts as one text document (for ``--save-charts``); each chart carries its title."""
    return "".join(f"{c.text}\n\n" for c in items)
