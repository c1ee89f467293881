"""The queue of the current start: one row per run, its status, and its result once saved."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from ftbench.tasks.info import primary_metrics, short_name
from ftbench.tui.format import (
    STATUS_ICON, STATUS_STYLE, duration, fixed, peak_memory, primary_metric,
)
from ftbench.tui.session import QueueItem, RunQueue


class QueueTable(DataTable):
    """Rows are keyed by queue index; enter on a finished row opens its run."""

    BINDINGS = [Binding("enter", "open_run", "Open run", show=False, id="queue.open_run")]

    class OpenRun(Message):
        def __init__(self, run_id: str) -> None:
            super().__init__()
            self.run_id = run_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.queue: RunQueue | None = None

    def on_mount(self) -> None:
        self.border_title = "Queue"
        self.add_column(" ", key="icon", width=1)
        self.add_column("method", key="method", width=9)
        self.add_column("status", key="status", width=9)
        self.add_column("acc", key="metric", width=5)
        self.add_column("train", key="train", width=5)
        self.add_column("peak MB", key="peak", width=7)
        self.add_column("seed", key="seed", width=4)

    def show_queue(self, queue: RunQueue | None) -> None:
        self.queue = queue
        row = self.cursor_row
        self.clear()
        if queue is None:
            return
        if queue.items:
            label = short_name(primary_metrics(queue.items[0].spec.task)[0])
            self.columns["metric"].label = Text(label)  # type: ignore[index]
        for item in queue:
            self.add_row(*self._cells(item), key=str(item.index))
        if queue.items:
            self.move_cursor(row=min(max(row, 0), len(queue.items) - 1))

    def update_item(self, item: QueueItem) -> None:
        key = str(item.index)
        if key not in self.rows:
            self.show_queue(self.queue)
            return
        for column, value in zip(("icon", "method", "status", "metric", "train", "peak", "seed"),
                                 self._cells(item)):
            self.update_cell(key, column, value)

    @staticmethod
    def _cells(item: QueueItem) -> list[Text]:
        style = STATUS_STYLE.get(item.status, "")
        status = item.status
        if item.status == "running" and item.feed.started is not None:
            status = f"{item.feed.step}/{item.feed.total_steps}"  # every step, not only logged
            if item.feed.evaluating is not None:
                status = f"eval @{item.feed.evaluating.step}"
        metric = train = peak = "-"
        if item.record is not None:
            name, value = primary_metric(item.record.metrics, item.spec.task)
            metric = f"{fixed(value)}" if value is not None else "-"
            train = duration(item.record.timing.get("train_s"))
            _, peak_mb = peak_memory(item.record.memory)
            peak = f"{peak_mb:,.0f}" if peak_mb is not None else "-"
        return [Text(STATUS_ICON.get(item.status, " "), style=style),
                Text(item.spec.method.name, style="bold" if item.status == "running" else ""),
                Text(status, style=style), Text(metric, justify="right"),
                Text(train, justify="right"), Text(peak, justify="right"),
                Text(str(item.spec.seed), justify="right")]

    def action_open_run(self) -> None:
        if self.queue is None or not self.row_count:
            return
        item = self.queue.items[self.cursor_row]
        if item.record is not None:
            self.post_message(self.OpenRun(item.record.run_id))
        else:
            self.app.notify(f"{item.label}: no saved record yet ({item.status})", timeout=3)
