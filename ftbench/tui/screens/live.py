"""Live run: the queue, the current run's progress, loss, eval metric, rates, memory and log.

The screen subscribes to the training's messages (`TrainingController.subscribe`) and handles
them itself: one coalescing `RunProgress` per run, redrawing only the panels whose data grew
since the last draw, and the queue's lifecycle (an item taken, a run ended, a start refused,
the queue changed or done). Everything shown is read from the queue and the run's feed, so
leaving the screen and coming back (or resizing it) redraws the same picture. Charts redraw on
their own timer (see `PlotView`); the log pane shows the queue's log, which holds every line a
message is about before the message is posted. While a run prepares on a GPU machine the
screen reads the GPU for the Memory panel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.worker import Worker, WorkerState

from ftbench.tui.commands import ScreenCommands
from ftbench.tui.messages import ItemStarted, QueueChanged, QueueDone, Refused, RunEnded, RunProgress
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

    def __init__(self) -> None:
        super().__init__()
        # per run: (steps, evals, GPU samples, started) when its panels were last drawn
        self._drawn: dict[int, tuple[int, int, int, bool]] = {}

    def on_mount(self) -> None:
        self.app.controller.subscribe(self)
        self.watch(self.app, "machine", self.query_one(MemoryPanel).set_machine)
        self.set_interval(1.0, self.poll_gpu)
        if len(self.app.gpus) > 1:
            from ftbench.engine.telemetry import INTERVAL_S  # only for a multi-GPU run, not for the first paint

            self.set_interval(INTERVAL_S, self.poll_gpus)
        self.show_all()

    def on_unmount(self) -> None:
        self.app.controller.unsubscribe(self)

    def on_screen_resume(self) -> None:
        self.show_all()
        self.call_after_refresh(self.poll_gpu)  # the GPU on the Memory panel at once

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
        feed = item.feed
        self._drawn[id(item)] = (len(feed.steps), len(feed.evals), len(feed.gpu),
                                 feed.started is not None)
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

    def show_progress(self, item: QueueItem) -> None:
        """``item``'s run moved on: redraw the panels whose data grew since they were last
        drawn (the header always; it is cheap, a few times a second at most)."""
        queue = self.queue
        if queue is None or item is not self.focus_item():
            return
        feed = item.feed
        now = (len(feed.steps), len(feed.evals), len(feed.gpu), feed.started is not None)
        steps, evals, gpu, started = self._drawn.get(id(item), (0, 0, 0, False))
        self._drawn[id(item)] = now
        if now[3] != started:  # the run began: total steps and parameters are known
            self.show_item(item)
            return
        self.query_one(ProgressPanel).show_item(queue, item)
        self.query_one(QueueTable).update_item(item)
        if now[0] != steps or now[1] != evals:
            self.query_one(RatePanel).show_item(item)
        if now[0] != steps:
            self.query_one(LossChart).show_feed(feed)
        if now[1] != evals:
            self.query_one(EvalChart).show_feed(feed, item.spec.task)
        if (now[0] != steps or now[2] != gpu) and item.record is None:
            device = feed.started.device if feed.started else None
            self.query_one(MemoryPanel).show_feed(feed, device)

    # --- the training's messages ---------------------------------------------------------
    def on_run_progress(self, message: RunProgress) -> None:
        self.show_progress(message.item)
        self.sync_log()  # the queue's log has what the notice is about, in order

    def on_item_started(self, message: ItemStarted) -> None:
        self.show_item(message.item)
        self.sync_log()

    def on_run_ended(self, message: RunEnded) -> None:
        self.show_item(message.item)
        self.sync_log()

    def on_refused(self, message: Refused) -> None:
        self.show_all()

    def on_queue_changed(self, message: QueueChanged) -> None:
        self.show_all()
        self.call_after_refresh(self.poll_gpu)  # a new queue: the GPU on the Memory panel at once

    def on_queue_done(self, message: QueueDone) -> None:
        self.show_all()

    # --- the GPU while a run prepares (no samples of its own yet) --------------------------
    def poll_gpu(self) -> None:
        """While a run prepares on a GPU machine, read the GPU once a second so the Memory
        panel shows it from the moment the run is queued."""
        queue = self.queue
        item = queue.current if queue is not None else None
        if not self.app.machine.gpu or item is None or item.feed.gpu or item.done:
            return
        if any(w.group == "gpu-now" and w.is_running for w in self.workers):
            return  # the last reading is still on its way: never pile up NVML calls
        self.read_gpu()

    @work(thread=True, exit_on_error=False, group="gpu-now", description="reading the GPU")
    def read_gpu(self) -> Any:
        from ftbench.tui.gpu_probe import gpu_now  # in this worker, not for the first paint

        return gpu_now(self.app.gpu_sampler)

    def poll_gpus(self) -> None:
        """While a multi-process run is in progress on a GPU machine, read every GPU it uses
        (every 0.5 s, as the engine samples its own) for the Memory panel's rows."""
        queue = self.queue
        item = queue.current if queue is not None else None
        if not self.app.machine.gpu or item is None or item.done:
            return
        if item.feed.started is not None and item.feed.started.device != "cuda":
            return  # the run trains on the CPU: no GPU rows to show
        if any(w.group == "gpus-now" and w.is_running for w in self.workers):
            return
        self.read_gpus()

    @work(thread=True, exit_on_error=False, group="gpus-now", description="reading the GPUs")
    def read_gpus(self) -> Any:
        from ftbench.tui.gpu_probe import gpus_now  # in this worker, not for the first paint

        return gpus_now(self.app.gpu_sampler, self.app.gpus)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state != WorkerState.SUCCESS:
            return
        if event.worker.group == "gpu-now" and event.worker.result is not None:
            self.query_one(MemoryPanel).set_gpu_now(event.worker.result)
        elif event.worker.group == "gpus-now":
            self.query_one(MemoryPanel).set_gpus(event.worker.result)

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
