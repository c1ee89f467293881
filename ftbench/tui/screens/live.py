"""Live run: the queue, the current run's progress, loss, eval metric, rates, memory and log.

The app owns the queue and calls the `show_*` methods as engine messages arrive; everything
shown is read from the queue and the run's feed, so leaving the screen and coming back (or
resizing it) redraws the same picture. Charts redraw on their own timer (see `PlotView`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal

from ftbench.tui.commands import ScreenCommands
from ftbench.tui.screens.base import MainScreen
from ftbench.tui.session import QueueItem, RunQueue
from ftbench.tui.widgets.eval_chart import EvalChart
from ftbench.tui.widgets.log_pane import LogPane
from ftbench.tui.widgets.loss_chart import LossChart
from ftbench.tui.widgets.memory_panel import MemoryPanel
from ftbench.tui.widgets.progress_panel import ProgressPanel
from ftbench.tui.widgets.rate_panel import RatePanel
from ftbench.tui.widgets.run_queue import QueueTable

if TYPE_CHECKING:
    from ftbench.tui.app import FtbenchApp


class LiveScreen(MainScreen):
    COMMANDS = {ScreenCommands}
    # palette entries for this screen's keys: (title, help, action), see ScreenCommands
    PALETTE = (("Show / hide the log", "The engine's messages (l)", "toggle_log"),)
    MODE = "live"
    BINDINGS = [
        Binding("c", "cancel_run", "Cancel run", tooltip="Cancel the run in progress (asks first)",
                id="live.cancel"),
        Binding("l", "toggle_log", "Log", tooltip="Show or hide the engine's log",
                id="live.log"),
    ]

    app: "FtbenchApp"

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="live-head"):
            yield ProgressPanel(id="progress")
            yield RatePanel(id="rates")
        with Horizontal(id="live-charts"):
            yield LossChart(id="loss-chart")
            yield EvalChart(id="eval-chart")
        with Horizontal(id="live-lower"):
            yield QueueTable(id="queue")
            yield MemoryPanel(id="memory")
        yield LogPane(id="log")

    def on_mount(self) -> None:
        self.watch(self.app, "machine", self.query_one(MemoryPanel).set_machine)
        self.show_all()

    def on_screen_resume(self) -> None:
        self.show_all()

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_all)  # the header's wording depends on the width

    # --- drawing -------------------------------------------------------------------------
    @property
    def queue(self) -> RunQueue | None:
        return self.app.queue

    def focus_item(self) -> QueueItem | None:
        """The run the panels follow: the running one, else the last one that ran."""
        queue = self.queue
        if queue is None:
            return None
        if queue.current is not None:
            return queue.current
        ran = [item for item in queue.items if item.feed.started or item.record]
        return ran[-1] if ran else None

    def show_all(self) -> None:
        self.refresh_bindings()
        queue = self.queue
        self.query_one(QueueTable).show_queue(queue)
        item = self.focus_item()
        self.sync_log()
        if item is None or queue is None:  # idle, or a queue whose first run is loading
            self.query_one(ProgressPanel).show_idle(*(() if queue is None else ("Starting…",)))
            self.query_one(RatePanel).show_item(None)
            self.query_one(LossChart).show_feed(None)
            self.query_one(EvalChart).show_feed(None, "classification")
            self.query_one(MemoryPanel).show_idle()
            return
        self.show_item(item)

    def show_item(self, item: QueueItem) -> None:
        """Redraw every panel for ``item`` (the charts only mark themselves dirty)."""
        queue = self.queue
        if queue is None:
            return
        self.refresh_bindings()  # "Cancel run" is active only while something trains
        self.query_one(ProgressPanel).show_item(queue, item)
        self.query_one(RatePanel).show_item(item)
        self.query_one(LossChart).show_feed(item.feed)
        self.query_one(EvalChart).show_feed(item.feed, item.spec.task)
        memory = self.query_one(MemoryPanel)
        device = item.feed.started.device if item.feed.started else None
        if item.record is not None:
            memory.show_record(item.record.memory, device, item.feed)
        else:
            memory.show_feed(item.feed, device)
        self.query_one(QueueTable).update_item(item)

    def show_queue(self) -> None:
        self.query_one(QueueTable).show_queue(self.queue)

    def show_step(self, item: QueueItem) -> None:
        if item is not self.focus_item() or self.queue is None:
            return
        self.query_one(ProgressPanel).show_item(self.queue, item)
        self.query_one(RatePanel).show_item(item)
        self.query_one(LossChart).show_feed(item.feed)
        self.query_one(QueueTable).update_item(item)
        if not item.feed.gpu:
            device = item.feed.started.device if item.feed.started else None
            self.query_one(MemoryPanel).show_feed(item.feed, device)

    def show_progress(self, item: QueueItem) -> None:
        """A step went by or an evaluation moved: the header only (cheap, a few a second)."""
        if item is self.focus_item() and self.queue is not None:
            self.query_one(ProgressPanel).show_item(self.queue, item)
            self.query_one(QueueTable).update_item(item)

    def show_gpu(self, item: QueueItem) -> None:
        if item is self.focus_item() and item.record is None:
            device = item.feed.started.device if item.feed.started else None
            self.query_one(MemoryPanel).show_feed(item.feed, device)

    def show_eval(self, item: QueueItem) -> None:
        if item is self.focus_item() and self.queue is not None:
            self.query_one(ProgressPanel).show_item(self.queue, item)  # the eval phase ended
            self.query_one(EvalChart).show_feed(item.feed, item.spec.task)
            self.query_one(RatePanel).show_item(item)

    def sync_log(self) -> None:
        self.query_one(LogPane).sync(self.queue, "The engine's messages appear here while a "
                                                 "preset runs.")

    # --- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_run":
            return True if self.app.training else None  # None: shown greyed out
        return True

    def action_cancel_run(self) -> None:
        self.app.action_cancel_run()

    def action_toggle_log(self) -> None:
        self.toggle_class("-show-log")

    def on_queue_table_open_run(self, message: QueueTable.OpenRun) -> None:
        self.app.open_run(message.run_id)
