"""Runs: every saved run in a table; filter by preset, method and status; sort by any column.

enter opens a run; space marks runs for Compare (c compares the marked ones, or the filtered
ones when none is marked). Unreadable run files are counted under the table, never fatal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Select, Static

from ftbench.tui.commands import ScreenCommands
from ftbench.results.record import STATUSES
from ftbench.tui.format import (
    STATUS_STYLE, duration, fixed, number, peak_memory, primary_metric, short_time,
)
from ftbench.tui.screens.base import MainScreen

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord
    from ftbench.tui.app import FtbenchApp

# key, header: what tells runs apart first (when, what, how far it got, how it did), then
# costs; the run id is the short id `ftbench runs` shows (compare and export accept it).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("mark", " "), ("created", "created"), ("preset", "preset"), ("method", "method"),
    ("seed", "seed"), ("status", "status"), ("steps", "steps"), ("metric", "metric"),
    ("train", "train"), ("peak", "peak MB"), ("trainable", "trainable"), ("id", "id"),
)
MARK = "●"
PRESET_WIDTH = 12  # longer preset names end in …; the detail screen has them in full


def sort_value(record: "RunRecord", column: str) -> Any:
    """What a column sorts by: the underlying number or string; missing values sort last."""
    if column == "created":
        return record.created_at
    if column in ("preset", "method", "status"):
        return getattr(record, column)
    if column == "id":
        return record.run_id
    if column == "seed":
        return record.seed
    if column == "steps":
        steps = record.timing.get("steps")
        return steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    if column == "metric":
        return primary_metric(record.metrics, record.task)[1]
    if column == "trainable":
        return number(record.params.get("trainable"))
    if column == "train":
        return number(record.timing.get("train_s"))
    if column == "peak":
        return peak_memory(record.memory)[1]
    return None


def row_cells(record: "RunRecord", marked: bool) -> list[Text]:
    name, metric = primary_metric(record.metrics, record.task)
    _, peak = peak_memory(record.memory)
    trainable = number(record.params.get("trainable"))
    # ftbench.report loads when runs are listed, not for the first paint
    from ftbench.report.groups import fmt_count

    from ftbench.report.select import short_id

    steps = sort_value(record, "steps")
    preset = record.preset if len(record.preset) <= PRESET_WIDTH else \
        record.preset[:PRESET_WIDTH - 1] + "…"
    return [
        Text(MARK if marked else " ", style="bold" if marked else ""),
        Text(short_time(record.created_at)[5:] or "-"),  # MM-DD HH:MM (UTC)
        Text(preset),
        Text(record.method),
        Text(str(record.seed) if record.seed is not None else "-", justify="right"),
        Text(record.status, style=STATUS_STYLE.get(record.status, "")),
        Text(str(steps) if steps is not None else "-", justify="right"),
        Text(f"{_SHORT.get(name, name)} {fixed(metric)}" if metric is not None else "-",
             justify="right"),
        Text(duration(record.timing.get("train_s")), justify="right"),
        Text(f"{peak:,.0f}" if peak is not None else "-", justify="right"),
        Text(fmt_count(trainable), justify="right"),
        Text(short_id(record.run_id), style="dim"),
    ]


_SHORT = {"accuracy": "acc", "exact_match": "EM"}


class RunsTable(DataTable):
    """The runs; enter opens the highlighted one."""

    BINDINGS = [Binding("enter", "select_cursor", "Open", tooltip="Open the highlighted run",
                        id="runs.open")]


class RunsScreen(MainScreen):
    COMMANDS = {ScreenCommands}
    # palette entries for this screen's keys: (title, help, action), see ScreenCommands
    PALETTE = (
        ("Select run for Compare", "Mark the highlighted run (space)", "mark"),
        ("Compare selected runs", "Or every run shown when none is selected (c)", "compare"),
        ("Sort runs…", "Choose the column to sort by (s)", "sort"),
        ("Filter runs", "By preset, method and status (/)", "filter"),
        ("Clear filters", "Show every run (escape)", "clear"),
    )
    MODE = "runs"
    BINDINGS = [
        Binding("space", "mark", "Select", tooltip="Mark the run for Compare", id="runs.mark"),
        Binding("c", "compare", "Compare", tooltip="Compare the marked runs (or all shown)",
                id="runs.compare"),
        Binding("slash", "filter", "Filter", tooltip="Filter by preset, method, status",
                id="runs.filter"),
        Binding("s", "sort", "Sort", tooltip="Choose the column to sort by (again: reverse)",
                id="runs.sort"),
        Binding("escape", "clear", "Back / clear filters", show=False, id="runs.clear"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="runs.reload"),
    ]

    app: "FtbenchApp"

    def __init__(self) -> None:
        super().__init__()
        self.sort_key: str = "created"
        self.sort_reverse = True  # newest first
        self.shown: list["RunRecord"] = []
        self._loaded_version = -1

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="runs-filters"):
            yield Select[str]([], prompt="preset: all", id="filter-preset")
            yield Select[str]([], prompt="method: all", id="filter-method")
            yield Select[str]([(s, s) for s in STATUSES], prompt="status: all",
                              id="filter-status")
        with Vertical(id="runs-body"):
            yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="runs-empty")
        yield Static(id="runs-status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for key, header in COLUMNS:
            table.add_column(header, key=key)
        table.border_title = "Runs"
        self.reload()
        table.focus()

    def on_screen_resume(self) -> None:
        if self._loaded_version != self.app.workspace.version:
            self.reload()
        else:
            self.refresh_table()  # marks may have changed on a run's screen

    # --- data ----------------------------------------------------------------------------
    def reload(self) -> None:
        workspace = self.app.workspace
        loaded = workspace.runs()
        self._loaded_version = workspace.version
        records = loaded.records
        workspace.keep_marks_of({r.run_id for r in records})
        for select_id, values in (("#filter-preset", sorted({r.preset for r in records})),
                                  ("#filter-method", sorted({r.method for r in records}))):
            select = self.query_one(select_id, Select)
            current = select.value
            with self.prevent(Select.Changed):
                select.set_options([(v, v) for v in values])
                if current in values:
                    select.value = current
        self.refresh_table()

    def filtered(self) -> list["RunRecord"]:
        wanted = {name: self.query_one(f"#filter-{name}", Select).value
                  for name in ("preset", "method", "status")}
        out = []
        for record in self.app.workspace.runs().records:
            if any(value is not Select.NULL and getattr(record, name) != value
                   for name, value in wanted.items()):
                continue
            out.append(record)
        present = [r for r in out if sort_value(r, self.sort_key) is not None]
        missing = [r for r in out if sort_value(r, self.sort_key) is None]
        present.sort(key=lambda r: sort_value(r, self.sort_key), reverse=self.sort_reverse)
        return present + missing

    def refresh_table(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_coordinate
        current = self.current_run_id()
        table.clear()
        self.shown = self.filtered()
        for record in self.shown:
            table.add_row(*row_cells(record, record.run_id in self.app.workspace.marked),
                          key=record.run_id)
        for key, header in COLUMNS:
            column = table.columns[key]  # type: ignore[index]
            arrow = (" ▼" if self.sort_reverse else " ▲") if key == self.sort_key else ""
            column.label = Text(header + arrow)
        table.refresh()
        if self.shown:
            row = next((i for i, r in enumerate(self.shown) if r.run_id == current), cursor.row)
            table.move_cursor(row=min(row, len(self.shown) - 1))
        self.show_state()

    def show_state(self) -> None:
        loaded = self.app.workspace.runs()
        empty = self.query_one("#runs-empty", Static)
        table = self.query_one(DataTable)
        total = len(loaded.records)
        table.display = bool(self.shown)
        empty.display = not self.shown
        if not total:
            empty.update(Text.assemble(
                ("No saved runs in ", ""), (self.app.runs_dir_label, "bold"), (" yet.\n\n", ""),
                ("Press 1 for the presets, highlight one (quickstart runs anywhere on a CPU) "
                 "and press r to run it. Finished runs appear here.", "dim")))
        elif not self.shown:
            empty.update(Text("No run matches the filters (escape clears them).", style="dim"))
        status = Text()
        status.append(f"{len(self.shown)} of {total} runs in {self.app.runs_dir_label}")
        if self.app.workspace.marked:
            status.append(f" · {len(self.app.workspace.marked)} selected for Compare", style="bold")
        if loaded.problems:
            status.append(f" · {len(loaded.problems)} unreadable file"
                          f"{'s' if len(loaded.problems) > 1 else ''} skipped", style="yellow")
        self.query_one("#runs-status", Static).update(status)

    def current_run_id(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.shown or not table.row_count:
            return None
        row = table.cursor_coordinate.row
        return self.shown[row].run_id if 0 <= row < len(self.shown) else None

    # --- events and actions --------------------------------------------------------------
    def on_select_changed(self, event: Select.Changed) -> None:
        self.refresh_table()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        self._sort_by(str(event.column_key.value))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        run_id = self.current_run_id()
        if run_id is not None:
            self.app.open_run(run_id)

    def action_mark(self) -> None:
        run_id = self.current_run_id()
        if run_id is None:
            return
        marked = self.app.workspace.toggle(run_id)
        table = self.query_one(DataTable)
        record = next(r for r in self.shown if r.run_id == run_id)
        table.update_cell(run_id, "mark", row_cells(record, marked)[0])
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self.show_state()

    def action_compare(self) -> None:
        workspace = self.app.workspace
        if workspace.marked:
            ids = [r.run_id for r in workspace.runs().records if r.run_id in workspace.marked]
            self.app.compare_runs(ids, f"{len(ids)} selected run{'s' if len(ids) > 1 else ''}")
        elif self.shown:
            ids = [r.run_id for r in self.shown]
            self.app.compare_runs(ids, f"{len(ids)} run{'s' if len(ids) > 1 else ''} shown")
        else:
            self.app.notify("No runs to compare.", severity="warning")

    def action_filter(self) -> None:
        self.query_one("#filter-preset", Select).focus()

    def action_sort(self) -> None:
        from ftbench.tui.screens.choice import ChoiceScreen  # when first opened, not for the first paint

        choices = [(key, header.strip() or key) for key, header in COLUMNS if key != "mark"]
        current = dict(choices).get(self.sort_key, self.sort_key)
        self.app.push_screen(
            ChoiceScreen("Sort runs by", choices, self.sort_key,
                         note=f"now: {current} {'descending' if self.sort_reverse else 'ascending'}"
                              "; choosing it again reverses"),
            lambda key: self._sort_by(key) if key else None)

    def _sort_by(self, key: str) -> None:
        if key == "mark":
            return
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, key in ("metric", "created")
        self.refresh_table()

    def action_clear(self) -> None:
        """Esc: from the filters, back to the table (filters kept); on the table, clear them.
        The keys panel, when open, closes first."""
        if self.app.action_hide_keys():
            return
        table = self.query_one(DataTable)
        focused = self.app.focused
        if focused is not None and focused is not table and \
                self.query_one("#runs-filters") in focused.ancestors_with_self:
            table.focus()
            return
        for select in self.query(Select):
            with self.prevent(Select.Changed):
                select.clear()
        self.refresh_table()
        self.query_one(DataTable).focus()

    def action_reload(self) -> None:
        self.app.workspace.reload()
        self.reload()
