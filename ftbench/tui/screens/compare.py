"""Compare: the report module's tables, charts and Pareto fronts for a set of runs.

The same code as ``ftbench compare``: `select_runs` / `build_comparison` choose and group
(mean ± std over seeds, or one row per run with g), `section_tables`, `plan_table` (plan's
prediction vs what each run measured) and `section_charts` draw.
Building runs in a thread worker (plotext takes tens of milliseconds a chart), sized to the
pane; the screen rebuilds when the runs, the selection or the width change.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual.worker import Worker, WorkerState

from ftbench.errors import FtbenchError
from ftbench.tui.commands import ScreenCommands
from ftbench.tui.screens.base import MainScreen
from ftbench.tui.workspace import CompareRequest

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord
    from ftbench.tui.app import FtbenchApp


def describe(request: CompareRequest, records: "list[RunRecord]") -> str:
    if request.ids:
        return request.label or f"{len(records)} selected runs"
    preset = records[0].preset if records else (request.preset or "the newest preset")
    return f"{preset}: latest run of each method and seed"


class CompareScreen(MainScreen):
    COMMANDS = {ScreenCommands}
    # palette entries for this screen's keys: (title, help, action), see ScreenCommands
    PALETTE = (
        ("Compare a preset…", "The latest runs of a preset (p)", "pick_preset"),
        ("Per run / grouped", "One row per run, or mean ± std over seeds (g)", "toggle_per_run"),
        ("Group by budget", "One table per budget: steps, data sizes, batch, length (b)",
         "toggle_by_budget"),
        ("Save charts as SVG", "A picture of the charts in the runs folder (ctrl+s)", "save_charts"),
        ("Curves over steps / time", "x axis of the overlaid loss and metric curves (x)",
         "toggle_x_axis"),
    )
    MODE = "compare"
    BINDINGS = [
        Binding("p", "pick_preset", "Preset…", tooltip="Compare the latest runs of a preset",
                id="compare.preset"),
        Binding("g", "toggle_per_run", "Per run / grouped",
                tooltip="One row per run, or mean ± std over seeds", id="compare.group"),
        Binding("b", "toggle_by_budget", "By budget",
                tooltip="One table per budget (steps, data sizes, batch, length), or one per "
                        "preset with a warning where budgets differ", id="compare.budget"),
        Binding("x", "toggle_x_axis", "Steps / time",
                tooltip="x axis of the overlaid curves: optimizer step or training time",
                id="compare.x_axis"),
        Binding("ctrl+s", "save_charts", "Save charts", show=False,
                tooltip="Save the tables' charts as an SVG picture in the runs folder",
                id="compare.save_charts"),
        Binding("ctrl+r", "rebuild", "Rebuild", show=False, id="compare.rebuild"),
    ]

    app: "FtbenchApp"

    def __init__(self) -> None:
        super().__init__()
        self.per_run = False
        self.by_budget = False
        self.x_axis = "step"
        self.saved: Any = None  # the last SVG saved with ctrl+s
        self.report: Group | None = None  # what the last build produced (tests read it)
        self._built: tuple[Any, ...] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(id="compare-head")
        with VerticalScroll(id="compare-body"):
            yield Static(id="compare-content")

    def on_mount(self) -> None:
        self.query_one("#compare-body").border_title = "Comparison"
        self.rebuild()

    def on_screen_resume(self) -> None:
        self.rebuild()

    def on_resize(self) -> None:
        self.call_after_refresh(self.rebuild)

    def selected(self) -> "list[RunRecord]":
        # ftbench.report loads when runs are compared, not for the first paint
        from ftbench.report.select import Selection, SelectionError, select_runs

        request = self.app.workspace.compare
        records = self.app.workspace.runs().records
        try:
            if request.ids:
                return select_runs(records, Selection(ids=request.ids))
            return select_runs(records, Selection(preset=request.preset, latest=True))
        except SelectionError as exc:
            self.app.notify(str(exc), severity="warning")
            return []

    def rebuild(self, force: bool = False) -> None:
        body = self.query_one("#compare-body", VerticalScroll)
        # Leave room for the vertical scrollbar, which appears once the report is drawn.
        width = body.content_size.width - body.styles.scrollbar_size_vertical
        if width < 20:
            return
        height = max(12, min(22, body.content_size.height - 1))
        key = (self.app.workspace.version, self.app.workspace.compare, self.per_run, self.by_budget,
               self.x_axis, width, height)
        if key == self._built and not force:
            return
        self._built = key
        records = self.selected()
        head = self.query_one("#compare-head", Static)
        content = self.query_one("#compare-content", Static)
        if not records:
            head.update(Text("Nothing to compare yet", style="bold"))
            content.update(Text.assemble(
                ("Run a preset (1 → r), or pick runs on the Runs screen (3: space selects, "
                 "c compares).", "dim")))
            return
        grouping = "one row per run" if self.per_run else "mean ± std over seeds"
        if self.by_budget:
            grouping += " · by budget"
        head.update(Text.assemble(("Comparing ", ""), (describe(self.app.workspace.compare, records),
                                                       "bold"),
                                  f" ({len(records)} run{'s' if len(records) != 1 else ''}) · "
                                  f"{grouping}", ("   p preset · g grouping · b budget · x steps/time", "dim")))
        content.update(Text("Building the comparison…", style="dim italic"))
        self.build_report(records, width, height, self.per_run, self.app.no_color, self.by_budget,
                          self.x_axis)

    @work(thread=True, exclusive=True, exit_on_error=False, group="compare",
          description="building the comparison")
    def build_report(self, records: "list[RunRecord]", width: int, height: int, per_run: bool,
                     colorless: bool, by_budget: bool = False, x_axis: str = "step") -> Group:
        return report_renderable(records, width, height, per_run, colorless, by_budget, x_axis)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "compare":
            return
        content = self.query_one("#compare-content", Static)
        if event.state == WorkerState.SUCCESS and event.worker.result is not None:
            self.report = event.worker.result
            content.update(self.report)
        elif event.state == WorkerState.ERROR:
            content.update(Text(f"Could not build the comparison: {event.worker.error}",
                                style="bold red"))

    def action_pick_preset(self) -> None:
        from ftbench.tui.screens.choice import ChoiceScreen  # when first opened, not for the first paint

        presets = self.app.workspace.saved_presets()
        if not presets:
            self.app.notify("No saved runs yet.", severity="warning")
            return
        current = self.app.workspace.compare.preset
        self.app.push_screen(ChoiceScreen("Compare the latest runs of", [(p, p) for p in presets],
                                          current),
                             lambda name: self.app.compare_preset(name) if name else None)

    def action_toggle_per_run(self) -> None:
        self.per_run = not self.per_run
        self.rebuild()

    def action_toggle_by_budget(self) -> None:
        self.by_budget = not self.by_budget
        self.rebuild()

    def action_toggle_x_axis(self) -> None:
        self.x_axis = "time" if self.x_axis == "step" else "step"
        self.rebuild()

    def action_save_charts(self) -> None:
        """The charts shown, as an SVG picture (in colour) next to the run files."""
        # the report modules load when runs are compared, not for the first paint
        from ftbench.report.charts import charts
        from ftbench.report.cli import charts_svg
        from ftbench.report.export import write_atomic
        from ftbench.report.groups import build_comparison

        records = self.selected()
        if not records:
            self.app.notify("Nothing to save yet.", severity="warning")
            return
        comparison = build_comparison(records, per_run=self.per_run, by_budget=self.by_budget)
        width = max(60, self.query_one("#compare-body").content_size.width - 2)
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        target = self.app.runs_dir / f"compare-{records[0].preset}-{stamp}.svg"
        try:
            path = write_atomic(target, charts_svg(charts(comparison, width, 22, colorless=False,
                                                          x_axis=self.x_axis), width))
        except FtbenchError as exc:
            self.app.notify(str(exc), title="Could not save", severity="error")
            return
        self.saved = path
        self.app.notify(f"Charts saved to {path}", timeout=6)

    def action_rebuild(self) -> None:
        self.app.workspace.reload()
        self.rebuild(force=True)


def report_renderable(records: "list[RunRecord]", width: int, height: int, per_run: bool,
                      colorless: bool, by_budget: bool = False, x_axis: str = "step") -> Group:
    """Tables then charts per section, as ``ftbench compare`` prints them."""
    # the report modules load when runs are compared, not for the first paint
    from ftbench.report.charts import section_charts
    from ftbench.report.groups import build_comparison
    from ftbench.report.planned import plan_table
    from ftbench.report.tables import section_tables

    comparison = build_comparison(records, per_run=per_run, by_budget=by_budget)
    parts: list[Any] = []
    for section in comparison.sections:
        for table in section_tables(section, width):
            parts += [table, Text("")]
        planned = plan_table(section.runs, section.title)
        if planned is not None:  # plan's prediction beside what each run measured
            parts += [planned, Text("")]
        for chart in section_charts(section, width, height, colorless, x_axis):
            parts += [Text.from_ansi(chart.text, no_wrap=True, overflow="crop"), Text("")]
    if not per_run:  # --tune sweeps: the tuning table and the sensitivity chart
        from ftbench.report.tuning import tuning_lines  # as above

        for item in tuning_lines(records, width, height, colorless):
            parts += [Text.from_ansi(item, no_wrap=True, overflow="crop") if isinstance(item, str) else item,
                      Text("")]
    return Group(*parts)
