"""The training queue, its worker thread and what happens when the worker fails.

`TrainingController` owns the `RunQueue`, starts one thread worker (``exclusive``, group
``training``, ``exit_on_error=False``) that runs each start's gates once (`ftbench.prepare.gate`:
trackers, hub, runs folder, fit unless forced), then calls `ftbench.engine.runner.run` per run,
and, when the worker itself fails outside `run()`, has the engine save a `failed` record
(`runner.save_failed`) for the run that was in progress. torch loads inside the worker, never
at start-up.

What the worker says goes out as messages (`ftbench.tui.messages`), posted (never awaited: the
training thread never waits on the UI) to the app and to every screen that subscribed: each
handles what it shows. Every engine event of a run is one coalescing `RunProgress`; the feed
keeps every point.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from ftbench.engine.events import Event, Log, RunFinished, RunStarted
from ftbench.errors import FtbenchError
from ftbench.text import one_line
from ftbench.tui.format import duration, number, primary_metric
from ftbench.tui.messages import ItemStarted, QueueDone, Refused, RunEnded, RunProgress
from ftbench.tui.session import QueueItem, RunQueue, summary

if TYPE_CHECKING:
    from textual.message_pump import MessagePump

    from ftbench.prepare import Prepared
    from ftbench.tui.app import FtbenchApp

TRAINING = "training"


class TrainingController:
    """One app's training: the queue, the worker and failure handling."""

    def __init__(self, app: "FtbenchApp") -> None:
        self.app = app
        self.queue: RunQueue | None = None
        self.subscribers: list[MessagePump] = []  # screens that show the training

    def subscribe(self, node: "MessagePump") -> None:
        """``node`` gets the training's messages too (until it unsubscribes)."""
        if node not in self.subscribers:
            self.subscribers.append(node)

    def unsubscribe(self, node: "MessagePump") -> None:
        if node in self.subscribers:
            self.subscribers.remove(node)

    @property
    def training(self) -> bool:
        return self.queue is not None and not self.queue.finished

    def start(self, prepared: "Prepared") -> bool:
        """Queue the prepared runs and start the worker; False when they joined the queue in
        progress (their gates run before the first of them trains)."""
        if self.training and self.queue is not None:
            self.queue.extend(list(prepared.specs), batch=prepared)
            return False
        self.queue = RunQueue(prepared.preset, list(prepared.specs), batch=prepared)
        self.app.run_worker(partial(self.run_queue, self.queue), thread=True, exclusive=True,
                            exit_on_error=False, group=TRAINING, description="training")
        return True

    def run_queue(self, queue: RunQueue) -> None:
        """Run the queue in order, one `run()` per item. Runs in a thread, never on the UI."""
        from ftbench.prepare import gate  # loads in this worker, not for the first paint

        gated: dict[int, Any] = {}  # id(the start's Prepared) -> what its gates returned
        while (taken := queue.take_next()) is not None:
            item, cancel = taken
            batch = item.batch
            if batch is not None and id(batch) not in gated:
                try:  # an unwritable runs folder, the hub, a run that will not fit...
                    gated[id(batch)] = gate(batch, self.app.runs_dir)
                except FtbenchError as exc:
                    self.refused(queue, item, str(exc))
                    continue
            self.post(partial(ItemStarted, queue, item))
            loaded = _Loading()  # a plan in progress (the start dialog) finishes first
            try:
                emit = self.emitter(item, loaded.release)
                if self.app.runner is not None:  # e.g. a torchrun launch (ftbench.distributed)
                    finished = self.app.runner(item.spec, emit, cancel, runs_dir=self.app.runs_dir)
                else:
                    finished = self.run_here(item.spec, emit, cancel)
            finally:
                loaded.release()
            self.ended(queue, item, finished)
        self.done(queue)

    def run_here(self, spec: Any, emit: Any, cancel: Any) -> RunFinished:
        """The engine in this process, with the app's GPU query and record writer."""
        from ftbench.engine.runner import run  # torch and transformers load as the run starts
        from ftbench.plan.record import prediction_for_record

        return run(spec, emit, cancel, runs_dir=self.app.runs_dir, predict=prediction_for_record,
                   gpu_sampler=self.app.gpu_sampler, **self.saver())

    def saver(self) -> dict[str, Any]:
        return {"saver": self.app.saver} if self.app.saver is not None else {}

    # --- what the queue's life says: its log first (the screens read it), then a message --
    def ended(self, queue: RunQueue, item: QueueItem, finished: RunFinished) -> None:
        """``item``'s run ended: keep its record, end its log with a summary, say so."""
        record = finished.record
        queue.finish(item, record, finished.path)
        queue.add_log(None, Log(None, "info" if record.status == "completed" else "warning",
                                run_summary(record, finished.path, self.app.runs_dir_label)))
        self.post(partial(RunEnded, item, finished))

    def refused(self, queue: RunQueue, item: QueueItem, reason: str) -> None:
        """A gate refused ``item``'s start: it and the rest of that start are skipped."""
        queue.refuse(item, reason)
        queue.add_log(None, Log(None, "error", reason))
        self.post(partial(Refused, item, reason))

    def done(self, queue: RunQueue) -> None:
        queue.add_log(None, Log(None, "info",
                                f"{queue.preset} finished: {summary(queue)}. Press 4 to compare."))
        self.post(partial(QueueDone, queue))

    def post(self, make: Callable[[], Any]) -> None:
        """Post a fresh message from ``make`` to the app and to each subscriber (a message is
        handled where it is posted); never raises into the engine (the app may be closing)."""
        for target in (self.app, *self.subscribers):
            try:
                target.post_message(make())
            except Exception:
                pass

    def emitter(self, item: QueueItem,
                on_started: Callable[[], None] | None = None) -> Callable[[Event], None]:
        """The ``emit`` for one run: the event goes to the item's feed (a log line also to the
        queue's log), then a `RunProgress` notice (coalescing, as it may). ``on_started``: called
        when the run has built its model and is about to train (`RunStarted`)."""
        feed = item.feed
        queue = self.queue

        def emit(event: Event) -> None:
            feed.add(event)  # first the feed (every point kept), then a notice (may coalesce)
            if on_started is not None and isinstance(event, RunStarted):
                on_started()
            if isinstance(event, RunFinished):
                return  # the worker posts RunEnded once the queue has the record
            if isinstance(event, Log) and queue is not None:
                queue.add_log(item, event)
            self.post(partial(RunProgress, item))

        return emit

    def failed(self, error: BaseException | None) -> str:
        """The worker failed outside `run()`: keep or save the record of the run in progress,
        skip the rest of the queue, and return the reason in one line."""
        text = str(error) if isinstance(error, FtbenchError) else f"{type(error).__name__}: {error}"
        text = one_line(text, 300)
        queue = self.queue
        if queue is None:
            return text
        item = queue.current
        if item is not None and item.feed.finished is not None:
            # run() saved its record before letting the error through: keep that one
            finished = item.feed.finished
            queue.finish(item, finished.record, finished.path)
        elif item is not None:
            from ftbench.engine.runner import save_failed  # the engine: not for the first paint

            finished = save_failed(item.spec, text, runs_dir=self.app.runs_dir,
                                   **self.saver())
            queue.finish(item, finished.record, finished.path)
        queue.stop()
        queue.take_next()  # marks the rest skipped
        return text


def run_summary(record: Any, path: str | None, runs_label: str = "") -> str:
    """The log's last line for a run: status, its metrics, train time, where it was saved."""
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


class _Loading:
    """Holds `ftbench.plan.runs.LOADING` from its creation until `release` (idempotent, from
    any thread): while a run loads torch, transformers and its model, no plan runs beside it."""

    def __init__(self) -> None:
        from ftbench.plan.runs import LOADING  # the planner loads with the first run, not for the first paint

        self._lock = LOADING
        self._lock.acquire()
        self._held = True
        self._guard = threading.Lock()

    def release(self) -> None:
        with self._guard:
            if self._held:
                self._held = False
                self._lock.release()
