"""The ftbench TUI: pick a preset, watch it train, cancel, browse and compare runs.

Same engine and report code as the CLI. Training runs in one thread worker that calls
`ftbench.engine.runner.run` for each queued run; the engine's events are appended to the
run's feed and posted to the app as messages (the training thread never waits on the UI;
steps and GPU samples coalesce). torch is imported inside that worker, never at start-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.worker import Worker, WorkerState

from ftbench.engine.events import Event, Log
from ftbench.tui.commands import FtbenchCommands
from ftbench.tui.controller import TRAINING, TrainingController
from ftbench.terms import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from ftbench.tui.format import one_line
from ftbench.tui.messages import (
    EvalDone, EvalMoved, GpuSampled, ItemStarted, LogLine, QueueDone, RunBegan, RunEnded,
    StepMetrics, StepMoved,
)
from ftbench.tui.screens.compare import CompareRequest, CompareScreen
from ftbench.tui.screens.live import LiveScreen
from ftbench.tui.screens.presets import PresetsScreen
from ftbench.tui.screens.runs import RunsScreen
from ftbench.tui.session import QueueItem, RunQueue, summary
from ftbench.tui.widgets.memory_panel import Machine, MemoryPanel

if TYPE_CHECKING:
    from ftbench.engine.runner import Hooks
    from ftbench.results.store import LoadResult
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
        presets: "list[Preset] | None" = None,
        machine: Machine | None = None,
        hooks: "Hooks | None" = None,
        cursor_blink: bool = True,
        start: "tuple[str, list[RunSpec]] | None" = None,
        runner: "Callable[..., Any] | None" = None,
        gpus: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        self._start = start
        # what runs one queued spec: None is the engine in this process; `ftbench run
        # --nproc-per-node N` on a terminal passes a torchrun launch (same events, same record)
        self.runner = runner
        # the NVML indices of the local GPUs a multi-process run uses (its launch): the Memory
        # panel reads each of them, since only rank 0's own GPU arrives as events
        self.gpus = gpus
        from ftbench.results.store import runs_dir as resolve_runs_dir

        self.runs_dir = resolve_runs_dir(runs_dir)
        self.preset_errors: list[str] = []
        if presets is None:
            from ftbench.presets import load_all

            presets = load_all(self.preset_errors.append)
        self.presets = presets
        if machine is not None:
            self.set_reactive(FtbenchApp.machine, machine)
        self._probe = machine is None
        self.hooks = hooks
        self.cursor_blink = cursor_blink
        self.controller = TrainingController(self)
        self.marked: set[str] = set()
        self.compare_request = CompareRequest()
        self.runs_version = 0
        self._loaded: "LoadResult | None" = None
        self._quitting = False

    # --- start-up ----------------------------------------------------------------------
    def on_mount(self) -> None:
        if self._probe:
            self.probe_machine()
        self.set_interval(1.0, self.poll_gpu)
        if len(self.gpus) > 1:
            from ftbench.engine.telemetry import INTERVAL_S

            self.set_interval(INTERVAL_S, self.poll_gpus)
        if self._start is not None:  # `ftbench run --preset X` on a terminal: train at once
            preset, specs = self._start
            self._start = None
            self.start_runs(preset, specs)

    @work(thread=True, exit_on_error=False, group="probe", description="looking for a GPU")
    def probe_machine(self) -> Machine:
        from ftbench.engine.telemetry import nvml_info

        sampler = self.hooks.gpu_sampler if self.hooks is not None else None
        if sampler is not None:  # a simulated GPU (tests): the same device the engine sees
            from ftbench.tui.gpu_probe import gpu_now

            sample = gpu_now(sampler)
            if sample is not None:
                return Machine(True, "simulated GPU", sample.gpu_total_mb)
        info = nvml_info()
        return Machine(info.available, info.name, info.total_mb,
                       "" if info.available else info.reason)

    def poll_gpu(self) -> None:
        """While a run prepares on a GPU machine (no samples of its own yet), read the GPU
        once a second so the Memory panel shows it from the moment the run is queued."""
        queue = self.queue
        item = queue.current if queue is not None else None
        if not self.machine.gpu or item is None or item.feed.gpu or item.done:
            return
        if any(w.group == "gpu-now" and w.is_running for w in self.workers):
            return  # the last reading is still on its way: never pile up NVML calls
        self.read_gpu()

    @work(thread=True, exit_on_error=False, group="gpu-now", description="reading the GPU")
    def read_gpu(self) -> Any:
        from ftbench.tui.gpu_probe import gpu_now

        return gpu_now(self.hooks.gpu_sampler if self.hooks is not None else None)

    def poll_gpus(self) -> None:
        """While a multi-process run is in progress on a GPU machine, read every GPU it uses
        (every 0.5 s, as the engine samples its own) for the Memory panel's rows."""
        queue = self.queue
        item = queue.current if queue is not None else None
        if not self.machine.gpu or item is None or item.done:
            return
        if item.feed.started is not None and item.feed.started.device != "cuda":
            return  # the run trains on the CPU: no GPU rows to show
        if any(w.group == "gpus-now" and w.is_running for w in self.workers):
            return
        self.read_gpus()

    @work(thread=True, exit_on_error=False, group="gpus-now", description="reading the GPUs")
    def read_gpus(self) -> Any:
        from ftbench.tui.gpu_probe import gpus_now

        return gpus_now(self.hooks.gpu_sampler if self.hooks is not None else None, self.gpus)

    # --- screens -----------------------------------------------------------------------
    @property
    def live(self) -> LiveScreen | None:
        try:
            screen = self.get_screen("live")
        except KeyError:  # uninstalled while the app quits; a late GPU reading may still come
            return None
        return screen if isinstance(screen, LiveScreen) and screen.is_mounted else None

    @property
    def runs_dir_label(self) -> str:
        path = self.runs_dir
        try:
            return str(path.resolve().relative_to(Path.cwd())) + "/"
        except ValueError:
            return str(path)

    def open_start(self, preset: "Preset") -> None:
        from ftbench.tui.screens.start import StartRequest, StartScreen

        def started(request: StartRequest | None) -> None:
            if request is not None:
                # The dialog closes and the top line says "starting" at once; opening the
                # live screen and the worker (a moment on a first visit) follows the repaint.
                self.set_activity(f"▶ {request.preset.name} starting…")
                if request.tune:
                    self.call_after_refresh(self.start_tuning, request)
                    return
                self.call_after_refresh(self.start_runs, request.preset.name, request.specs)

        self.push_screen(StartScreen(preset), started)

    def start_tuning(self, request: Any) -> None:
        """The start dialog's Tune box: the sweep's trials in the queue, then its finals
        (ftbench.tune.bridge); one notice and nothing queued when it cannot start."""
        from ftbench.errors import FtbenchError
        from ftbench.tune.bridge import QueuedSweep, queued_sweep

        name = request.preset.name
        if self.training or (self.runner is not None and not isinstance(self.runner, QueuedSweep)):
            self.notify("Tuning starts on its own: wait for the queue to finish (and it does not "
                        "run under torchrun)", severity="warning")
            self.set_activity("")
            return
        try:
            sweep = queued_sweep(request.preset, request.specs, Path(self.runs_dir),
                                 add_runs=lambda specs: self.call_from_thread(self.start_runs, name, specs))
        except FtbenchError as exc:
            self.notify(str(exc), severity="error")
            self.set_activity("")
            return
        self.runner = sweep
        self.start_runs(name, sweep.queue())

    def open_run(self, run_id: str) -> None:
        from ftbench.results.record import RecordError
        from ftbench.results.store import find_run
        from ftbench.tui.screens.run_detail import RunScreen

        try:
            record = find_run(run_id, self.runs_dir)
        except (RecordError, OSError) as exc:
            self.notify(f"Cannot open {run_id}: {exc}", severity="error")
            return
        self.push_screen(RunScreen(record))

    def compare_runs(self, ids: list[str], label: str) -> None:
        self.compare_request = CompareRequest(ids=tuple(ids), label=label)
        self.switch_mode("compare")

    def compare_preset(self, preset: str | None) -> None:
        self.compare_request = CompareRequest(preset=preset)
        self.switch_mode("compare")

    def toggle_mark(self, run_id: str) -> None:
        self.marked ^= {run_id}
        state = "selected for" if run_id in self.marked else "removed from"
        self.notify(f"{run_id} {state} Compare ({len(self.marked)} selected)", timeout=3)

    # --- runs folder ---------------------------------------------------------------------
    def runs(self) -> "LoadResult":
        if self._loaded is None:
            from ftbench.results.store import load_runs

            self._loaded = load_runs(self.runs_dir)
        return self._loaded

    def reload_runs(self) -> None:
        self._loaded = None
        self.runs_version += 1

    def saved_presets(self) -> list[str]:
        return list(dict.fromkeys(r.preset for r in reversed(self.runs().records)))

    def action_reload_runs(self) -> None:
        self.reload_runs()
        self.notify(f"{len(self.runs().records)} runs in {self.runs_dir_label}", timeout=3)

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

    def start_runs(self, preset: str, specs: "list[RunSpec]") -> None:
        """Queue ``specs`` and start the worker (or add them to the queue in progress)."""
        if not self.controller.start(preset, specs):
            self.notify(f"Added {len(specs)} run(s) to the queue.", timeout=4)
            if self.live is not None:
                self.live.show_queue()
            return
        self.set_activity(f"▶ {preset} starting")
        self.switch_mode("live")
        if self.live is not None:
            self.live.show_all()
        self.call_after_refresh(self.poll_gpu)  # the GPU on the Memory panel at once

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

    # --- engine messages -----------------------------------------------------------------
    def on_item_started(self, message: ItemStarted) -> None:
        self.set_activity(self._activity_for(message.item))
        if self.live is not None:
            self.live.show_item(message.item)

    def on_run_began(self, message: RunBegan) -> None:
        self.set_activity(self._activity_for(message.item))
        if self.live is not None:
            self.live.show_item(message.item)

    def on_step_metrics(self, message: StepMetrics) -> None:
        self.set_activity(self._activity_for(message.item))
        if self.live is not None:
            self.live.show_step(message.item)

    def on_step_moved(self, message: StepMoved) -> None:
        self.set_activity(self._activity_for(message.item))
        if self.live is not None:
            self.live.show_progress(message.item)

    def on_eval_moved(self, message: EvalMoved) -> None:
        self.set_activity(self._activity_for(message.item))
        if self.live is not None:
            self.live.show_progress(message.item)

    def on_gpu_sampled(self, message: GpuSampled) -> None:
        if self.live is not None:
            self.live.show_gpu(message.item)

    def on_eval_done(self, message: EvalDone) -> None:
        self.set_activity(self._activity_for(message.item))
        if self.live is not None:
            self.live.show_eval(message.item)

    def on_log_line(self, message: LogLine) -> None:
        if self.queue is not None:
            self.queue.log.append((message.item, message.event))
        if self.live is not None:
            self.live.sync_log()

    def note(self, text: str, level: str = "info") -> None:
        """A line of the app's own in the queue's log (cancel requested, queue finished...)."""
        if self.queue is None:
            return
        self.queue.log.append((None, Log(None, level, text)))
        if self.live is not None:
            self.live.sync_log()

    def on_run_ended(self, message: RunEnded) -> None:
        item, event = message.item, message.event
        record = event.record
        self.reload_runs()
        if self.live is not None:
            self.live.show_item(item)
        self.note(run_summary(record, event.path, self.runs_dir_label),
                  "info" if record.status == "completed" else "warning")
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

    def on_queue_done(self, message: QueueDone) -> None:
        queue = message.queue
        self.set_activity("")
        self.compare_request = CompareRequest(preset=queue.preset)
        self.note(f"{queue.preset} finished: {summary(queue)}. Press 4 to compare.")
        if self.live is not None:
            self.live.show_all()
        if not self._quitting:
            self.notify(f"{summary(queue)}. Press 4 to compare.", title=f"{queue.preset} done",
                        timeout=8)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "probe" and event.state == WorkerState.SUCCESS:
            self.machine = worker.result
            return
        if worker.group == "gpu-now":
            if event.state == WorkerState.SUCCESS and worker.result is not None \
                    and self.live is not None:
                self.live.query_one(MemoryPanel).set_gpu_now(worker.result)
            return
        if worker.group == "gpus-now":
            if event.state == WorkerState.SUCCESS and self.live is not None:
                self.live.query_one(MemoryPanel).set_gpus(worker.result)
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
        self.reload_runs()
        self.note(text, "error")
        if self.live is not None:
            self.live.show_all()
        self.notify(text, title="Could not run", severity="error", timeout=12)

    def action_cancel_run(self) -> None:
        from ftbench.tui.screens.confirm import CancelChoice, CancelRunScreen

        queue = self.queue
        item = queue.current if queue is not None else None
        if queue is None or item is None:
            self.notify("No run in progress.", timeout=3)
            return
        remaining = sum(1 for i in queue.items if i.status == "queued")

        def decided(choice: "CancelChoice | None") -> None:
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
            if self.live is not None:
                self.live.show_item(item)

        self.push_screen(CancelRunScreen(item.label, remaining), decided)

    # --- quitting and theme -------------------------------------------------------------
    async def action_quit(self) -> None:
        queue = self.queue
        if self._quitting or not self.training or queue is None:
            self.exit()
            return
        from ftbench.tui.screens.confirm import QuitScreen

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
        from ftbench.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_hide_keys(self) -> bool:
        """Esc closes Textual's keys panel (opened from the palette's "Keys"); screens with
        an Esc of their own call this first. True if there was a panel to close."""
        from textual.widgets import HelpPanel

        if not self.screen.query(HelpPanel):
            return False
        self.action_hide_help_panel()
        return True

    def action_toggle_dark(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"


def run_app(runs_dir: str | None = None,
            start: "tuple[str, list[RunSpec]] | None" = None,
            runner: "Callable[..., Any] | None" = None, gpus: tuple[int, ...] = ()) -> int:
    """Entry point for ``ftbench`` / ``ftbench tui`` and, with ``start`` (a preset name and
    its expanded runs), for ``ftbench run`` on a terminal: the runs start at once, live.

    Exit code: 0, or with ``start`` the headless codes: 1 if a run did not complete,
    130 if the queue was stopped before every run had started.
    """
    app = FtbenchApp(runs_dir, start=start, runner=runner, gpus=gpus)
    app.run()
    queue = app.queue
    if start is not None and queue is not None and queue.records():
        # `ftbench run` on a terminal: after q, the same results table as headless prints.
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


def run_summary(record: "Any", path: str | None, runs_label: str = "") -> str:
    """The log's last line for a run: status, its metrics, train time, where it was saved."""
    from ftbench.tui.format import duration, number, primary_metric

    name, value = primary_metric(record.metrics, record.task)
    parts = [f"{record.method} · seed {record.seed}: {record.status}"]
    if value is not None:
        at = record.metrics.get("at_step")
        parts.append(f"{name} {value:.4f}" + (f" at step {at}" if at is not None else ""))
    f1 = number(record.metrics.get("f1"))
    if f1 is not None and name != "f1":
        parts.append(f"f1 {f1:.4f}")
    train_s = number(record.timing.get("train_s"))
    if train_s is not None:
        parts.append(f"train {duration(train_s)} ({record.timing.get('steps') or 0} steps)")
    if record.error and record.status != "completed":
        parts.append(one_line(record.error, 120))
    parts.append(f"saved {path}" if path else "not saved")
    return " · ".join(parts)


def queue_exit_code(statuses: "list[str]", queued: int) -> int:
    """The headless exit codes for a queue run in the TUI: 130 if it was stopped (a run
    cancelled, or runs left unstarted), else 1 if a run failed or diverged, else 0."""
    if len(statuses) < queued or "cancelled" in statuses:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if any(s != "completed" for s in statuses) else EXIT_OK


def measure_first_paint(t0: float) -> float:
    """Seconds from ``t0`` (a `time.time()` taken at process start) to the first frame of
    the TUI, run headless on the default runs folder (benchmarks/startup.py)."""
    import time

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

