"""The ftbench TUI: pick a preset, watch it train, cancel, browse and compare runs.

Same engine and report code as the CLI. Training runs in one thread worker
(`ftbench.tui.controller`) that calls `ftbench.engine.runner.run` for each queued run; the
engine's events are appended to the run's feed and posted as messages to the app and to the
screens that subscribed (the live screen): each handles its own. The app keeps what is
app-wide: the line on top saying what trains, notifications, the log's notes, quitting. The
saved runs, the selection for Compare and what Compare shows are one `Workspace` the screens
share (``app.workspace``). torch is imported inside the worker, never at start-up.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.worker import Worker, WorkerState

from ftbench.engine.events import Event, Log
from ftbench.errors import FtbenchError
from ftbench.presets import load_all
from ftbench.results.record import RecordError
from ftbench.results.store import find_run
from ftbench.results.store import runs_dir as resolve_runs_dir
from ftbench.tui.commands import FtbenchCommands
from ftbench.tui.controller import TRAINING, TrainingController, run_summary
from ftbench.terms import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from ftbench.tui.format import one_line
from ftbench.tui.messages import ItemStarted, QueueChanged, QueueDone, Refused, RunEnded, RunProgress
from ftbench.tui.screens.compare import CompareScreen
from ftbench.tui.screens.live import LiveScreen
from ftbench.tui.screens.presets import PresetsScreen
from ftbench.tui.screens.runs import RunsScreen
from ftbench.tui.session import QueueItem, RunQueue, summary
from ftbench.tui.widgets.memory_panel import Machine
from ftbench.tui.workspace import CompareRequest, Workspace

if TYPE_CHECKING:
    from ftbench.engine.runner import Saver
    from ftbench.engine.telemetry import GpuSampler
    from ftbench.plan.device import DeviceInfo
    from ftbench.prepare import Prepared
    from ftbench.spec import Preset, RunSpec

__all__ = ["TRAINING", "FtbenchApp", "run_app", "run_summary", "queue_exit_code"]


class FtbenchApp(App[None]):
    """``ftbench`` with no arguments."""

    CSS_PATH = "ftbench.tcss"
    TITLE = "ftbench"
    MODES = {"presets": PresetsScreen, "live": "live", "runs": RunsScreen,
             "compare": CompareScreen}
    SCREENS = {"live": LiveScreen}
    DEFAULT_MODE = "presets"
    COMMANDS = App.COMMANDS | {FtbenchCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    BINDINGS = [
        Binding("1", "switch_mode('presets')", "Presets", show=False, id="app.presets"),
        Binding("2", "switch_mode('live')", "Live", show=False, id="app.live"),
        Binding("3", "switch_mode('runs')", "Runs", show=False, id="app.runs"),
        Binding("4", "switch_mode('compare')", "Compare", show=False, id="app.compare"),
        Binding("q", "quit", "Quit", tooltip="Quit (asks first while a run trains)",
                id="app.quit"),
        Binding("ctrl+t", "toggle_dark", "Theme", show=False, id="app.theme"),
        Binding("question_mark,f1", "help", "Help", key_display="?",
                tooltip="Screens and keys", id="app.help"),
        Binding("escape", "hide_keys", "Close the keys panel", show=False, id="app.hide_keys"),
    ]

    activity: var[str] = var("")
    """What is training, for the line at the top of every screen ("" when idle)."""
    machine: var[Machine] = var(Machine(False, reason="checking for an NVIDIA GPU"))
    """What the start-up NVML probe found (no torch involved)."""

    def __init__(
        self,
        runs_dir: str | os.PathLike[str] | None = None,
        *,
        presets: list[Preset] | None = None,
        machine: Machine | None = None,
        gpu_sampler: GpuSampler | None = None,
        saver: Saver | None = None,
        cursor_blink: bool = True,
        start: Prepared | None = None,
        runner: Callable[..., Any] | None = None,
        gpus: tuple[int, ...] = (),
        device: DeviceInfo | None = None,
    ) -> None:
        super().__init__()
        self._start = start
        # the device the start dialog prepares and plans runs for; None: this machine, found
        # in the dialog's worker (`ftbench.prepare.device_for`); tests pass a simulated one
        self.device = device
        # what runs one queued spec: None is the engine in this process; `ftbench run
        # --nproc-per-node N` on a terminal passes a torchrun launch (same events, same record)
        self.runner = runner
        # the NVML indices of the local GPUs a multi-process run uses (its launch): the Memory
        # panel reads each of them, since only rank 0's own GPU arrives as events
        self.gpus = gpus
        # the saved runs, the selection for Compare and what it shows: shared by the screens
        self.workspace = Workspace(resolve_runs_dir(runs_dir))
        self.preset_errors: list[str] = []
        if presets is None:
            presets = load_all(self.preset_errors.append)
        self.presets = presets
        if machine is not None:
            self.set_reactive(FtbenchApp.machine, machine)
        self._probe = machine is None
        # the GPU query (None: NVML) for the panels and the engine; a test simulates a GPU
        self.gpu_sampler = gpu_sampler
        # writes a run's record (None: the engine's own); a test simulates a full disk
        self.saver = saver
        self.cursor_blink = cursor_blink
        self.controller = TrainingController(self)
        self._quitting = False

    # --- start-up ----------------------------------------------------------------------
    def on_mount(self) -> None:
        if self._probe:
            self.probe_machine()
        if self._start is not None:  # `ftbench run --preset X` on a terminal: train at once
            prepared, self._start = self._start, None
            self.start_runs(prepared)

    @work(thread=True, exit_on_error=False, group="probe", description="looking for a GPU")
    def probe_machine(self) -> Machine:
        # imported in this worker, so the first paint does not wait for the GPU code
        from ftbench.engine.telemetry import nvml_info

        sampler = self.gpu_sampler
        if sampler is not None:  # a simulated GPU (tests): the same device the engine sees
            from ftbench.tui.gpu_probe import gpu_now  # in this worker, as above

            sample = gpu_now(sampler)
            if sample is not None:
                return Machine(True, "simulated GPU", sample.gpu_total_mb)
        info = nvml_info()
        return Machine(info.available, info.name, info.total_mb,
                       "" if info.available else info.reason)

    # --- screens -----------------------------------------------------------------------
    @property
    def runs_dir(self) -> Path:
        return self.workspace.runs_dir

    @property
    def runs_dir_label(self) -> str:
        return self.workspace.label

    def open_start(self, preset: Preset) -> None:
        from ftbench.tui.screens.start import StartRequest, StartScreen  # when first opened, not for the first paint

        def started(request: StartRequest | None) -> None:
            if request is not None:
                # The dialog closes and the top line says "starting" at once; opening the
                # live screen and the worker (a moment on a first visit) follows the repaint.
                self.set_activity(f"▶ {request.prepared.preset} starting…")
                if request.tune:
                    self.call_after_refresh(self.start_tuning, preset, request.prepared)
                    return
                self.call_after_refresh(self.start_runs, request.prepared)

        self.push_screen(StartScreen(preset), started)

    def start_tuning(self, preset: Preset, prepared: Prepared) -> None:
        """The start dialog's Tune box: the sweep's trials in the queue, then its finals
        (ftbench.tune.bridge), both from the prepared runs and gated like them (with the
        dialog's "Run anyway"); one notice and nothing queued when it cannot start."""
        # the sweep code loads only when tuning starts, not for the first paint
        from ftbench.tune.bridge import QueuedSweep, queued_sweep

        if self.training or (self.runner is not None and not isinstance(self.runner, QueuedSweep)):
            self.notify("Tuning starts on its own: wait for the queue to finish (and it does not "
                        "run under torchrun)", severity="warning")
            self.set_activity("")
            return

        def batch(specs: list[RunSpec]) -> Prepared:  # trials or finals, prepared like the runs
            return replace(prepared, specs=tuple(specs), plans=None, gated=False)

        try:
            sweep = queued_sweep(preset, list(prepared.specs), Path(self.runs_dir),
                                 add_runs=lambda specs: self.call_from_thread(self.start_runs, batch(specs)))
        except FtbenchError as exc:
            self.notify(str(exc), severity="error")
            self.set_activity("")
            return
        self.runner = sweep
        self.start_runs(batch(sweep.queue()))

    def open_run(self, run_id: str) -> None:
        from ftbench.tui.screens.run_detail import RunScreen  # when first opened, not for the first paint

        try:
            record = find_run(run_id, self.runs_dir)
        except (RecordError, OSError) as exc:
            self.notify(f"Cannot open {run_id}: {exc}", severity="error")
            return
        self.push_screen(RunScreen(record))

    def compare_runs(self, ids: list[str], label: str) -> None:
        self.workspace.compare = CompareRequest(ids=tuple(ids), label=label)
        self.switch_mode("compare")

    def compare_preset(self, preset: str | None) -> None:
        self.workspace.compare = CompareRequest(preset=preset)
        self.switch_mode("compare")

    def toggle_mark(self, run_id: str) -> None:
        state = "selected for" if self.workspace.toggle(run_id) else "removed from"
        self.notify(f"{run_id} {state} Compare ({len(self.workspace.marked)} selected)", timeout=3)

    def action_reload_runs(self) -> None:
        self.workspace.reload()
        self.notify(f"{len(self.workspace.runs().records)} runs in {self.runs_dir_label}",
                    timeout=3)

    # --- training (ftbench.tui.controller) -----------------------------------------------
    @property
    def queue(self) -> RunQueue | None:
        return self.controller.queue

    @queue.setter
    def queue(self, queue: RunQueue | None) -> None:
        self.controller.queue = queue

    @property
    def training(self) -> bool:
        return self.controller.training

    def start_runs(self, prepared: Prepared) -> None:
        """Queue the prepared runs and start the worker (or add them to the queue in
        progress); their gates run in the worker before the first of them trains."""
        if not self.controller.start(prepared):
            self.notify(f"Added {len(prepared.specs)} run(s) to the queue.", timeout=4)
            self.controller.post(partial(QueueChanged, self.controller.queue))
            return
        self.set_activity(f"▶ {prepared.preset} starting")
        self.switch_mode("live")
        self.controller.post(partial(QueueChanged, self.controller.queue))  # drawn there

    def _emitter(self, item: QueueItem) -> Callable[[Event], None]:
        return self.controller.emitter(item)

    def set_activity(self, text: str) -> None:
        self.activity = text

    def _activity_for(self, item: QueueItem) -> str:
        queue = self.queue
        if queue is None:
            return ""
        feed = item.feed
        where = f"{feed.step}/{feed.total_steps}" if feed.started or feed.progress else "starting"
        if feed.evaluating is not None:
            where += " · evaluating"
        state = "cancelling" if queue.cancelling and queue.current is item else "▶"
        return f"{state} {queue.preset} · {item.spec.method.name} {where} · " \
               f"{item.index + 1}/{len(queue)}"

    # --- the training's messages: what is app-wide (the screens handle their own) --------
    def on_item_started(self, message: ItemStarted) -> None:
        self.set_activity(self._activity_for(message.item))

    def on_run_progress(self, message: RunProgress) -> None:
        self.set_activity(self._activity_for(message.item))

    def note(self, text: str, level: str = "info") -> None:
        """A line of the app's own in the queue's log (cancel requested, queue finished...)."""
        if self.queue is not None:
            self.queue.add_log(None, Log(None, level, text))

    def on_run_ended(self, message: RunEnded) -> None:
        event = message.event
        record = event.record
        self.workspace.reload()
        text = f"{record.method} (seed {record.seed}): {record.status}"
        if record.status == "completed":
            self.notify(text, title="Run finished", timeout=4)
        elif record.status == "cancelled":
            self.notify(text + " — saved", title="Run cancelled", severity="warning", timeout=5)
        else:
            self.notify(f"{text}: {one_line(record.error or '', 160)}", title="Run failed",
                        severity="error", timeout=10)
        if event.save_error:
            self.notify(one_line(event.save_error, 200), title="Save problem", severity="error",
                        timeout=10)

    def on_refused(self, message: Refused) -> None:
        """A start's gates refused it (hub, runs folder, fit...): its runs are skipped."""
        self.notify(one_line(message.reason, 300), title="Could not run", severity="error",
                    timeout=12)

    def on_queue_done(self, message: QueueDone) -> None:
        queue = message.queue
        self.set_activity("")
        self.workspace.compare = CompareRequest(preset=queue.preset)
        if not self._quitting:
            self.notify(f"{summary(queue)}. Press 4 to compare.", title=f"{queue.preset} done",
                        timeout=8)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "probe" and event.state == WorkerState.SUCCESS:
            self.machine = worker.result
            return
        if worker.group != TRAINING:
            return
        if event.state == WorkerState.ERROR:
            self._training_failed(worker.error)
        if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED) \
                and self._quitting:
            self.exit()

    def _training_failed(self, error: BaseException | None) -> None:
        """The worker itself failed (outside `run()`): the controller saves what was
        running; the screens say why."""
        text = self.controller.failed(error)
        self.set_activity("")
        self.workspace.reload()
        self.note(text, "error")
        if self.queue is not None:
            self.controller.post(partial(QueueChanged, self.queue))
        self.notify(text, title="Could not run", severity="error", timeout=12)

    def action_cancel_run(self) -> None:
        # the dialog loads when first opened, not for the first paint
        from ftbench.tui.screens.confirm import CancelChoice, CancelRunScreen

        queue = self.queue
        item = queue.current if queue is not None else None
        if queue is None or item is None:
            self.notify("No run in progress.", timeout=3)
            return
        remaining = sum(1 for i in queue.items if i.status == "queued")

        def decided(choice: CancelChoice | None) -> None:
            if choice is None or queue.current is not item:
                return
            queue.cancel_current(stop_queue=choice.stop_queue, evaluate=choice.evaluate)
            self.set_activity(self._activity_for(item))
            then = "the queue stops" if choice.stop_queue or not remaining else \
                "the next run starts"
            how = "is evaluated once, then saved" if choice.evaluate else \
                "is saved at once (no evaluation)"
            self.note(f"cancelling {item.label}: it stops after this step and {how}; "
                      f"then {then}", "warning")
            self.controller.post(partial(RunProgress, item))

        self.push_screen(CancelRunScreen(item.label, remaining), decided)

    # --- quitting and theme -------------------------------------------------------------
    async def action_quit(self) -> None:
        queue = self.queue
        if self._quitting or not self.training or queue is None:
            self.exit()
            return
        from ftbench.tui.screens.confirm import QuitScreen  # when first opened, not for the first paint

        item = queue.current
        label = f"{queue.preset} · {item.label}" if item else queue.preset

        def decided(quit_now: bool | None) -> None:
            if not quit_now:
                return
            self._quitting = True
            queue.stop()
            self.set_activity("cancelling, then quitting")
            self.notify("Cancelling the run and saving it, then quitting (q again to quit now).",
                        timeout=30)
            if not any(w.group == TRAINING and w.is_running for w in self.workers):
                self.exit()

        self.push_screen(QuitScreen(label), decided)

    def action_help(self) -> None:
        from ftbench.tui.screens.help import HelpScreen  # when first opened, not for the first paint

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_hide_keys(self) -> bool:
        """Esc closes Textual's keys panel (opened from the palette's "Keys"); screens with
        an Esc of their own call this first. True if there was a panel to close."""
        from textual.widgets import HelpPanel  # Textual loads it when first used, not for the first paint

        if not self.screen.query(HelpPanel):
            return False
        self.action_hide_help_panel()
        return True

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"


def run_app(runs_dir: str | None = None, start: Prepared | None = None,
            runner: Callable[..., Any] | None = None, gpus: tuple[int, ...] = ()) -> int:
    """Entry point for ``ftbench`` / ``ftbench tui`` and, with ``start`` (a preset's runs,
    prepared and gated by the CLI), for ``ftbench run`` on a terminal: the runs start at
    once, live.

    Exit code: 0, or with ``start`` the headless codes: 1 if a run did not complete,
    130 if the queue was stopped before every run had started.
    """
    app = FtbenchApp(runs_dir, start=start, runner=runner, gpus=gpus)
    app.run()
    queue = app.queue
    if start is not None and queue is not None and queue.records():
        # `ftbench run` on a terminal: after q, the same results table as headless prints.
        # (ftbench.headless loads only for it)
        from rich.console import Console

        from ftbench.headless import summary_table

        Console().print(summary_table(queue.records()))
    if queue is not None and queue.current is not None:
        # Quit a second time while cancelling: the run stops at its next step and is saved
        # before the process exits (the worker thread is joined at interpreter exit).
        queue.stop()
        print("ftbench: stopping the run in flight; it is saved as cancelled", file=sys.stderr)
    if start is None or queue is None:
        return 0
    return queue_exit_code([r.status for r in queue.records()], len(queue))


def queue_exit_code(statuses: list[str], queued: int) -> int:
    """The headless exit codes for a queue run in the TUI: 130 if it was stopped (a run
    cancelled, or runs left unstarted), else 1 if a run failed or diverged, else 0."""
    if len(statuses) < queued or "cancelled" in statuses:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(s != "completed" for s in statuses) else EXIT_OK


def measure_first_paint(t0: float) -> float:
    """Seconds from ``t0`` (a `time.time()` taken at process start) to the first frame of
    the TUI, run headless on the default runs folder (benchmarks/startup.py)."""
    painted: list[float] = []

    class _Timed(FtbenchApp):
        def on_mount(self) -> None:
            super().on_mount()
            self.call_after_refresh(self._painted)

        def _painted(self) -> None:
            painted.append(time.time())
            self.exit()

    _Timed(machine=Machine(False, reason="not probed")).run(headless=True, size=(120, 40))
    return painted[0] - t0 if painted else float("nan")

