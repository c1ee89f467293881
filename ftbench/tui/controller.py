"""The training queue, its worker thread and what happens when the worker fails.

`TrainingController` owns the `RunQueue`, starts one thread worker (``exclusive``, group
``training``, ``exit_on_error=False``) that runs each start's gates once (`ftbench.prepare.gate`:
trackers, hub, runs folder, fit unless forced), then calls `ftbench.engine.runner.run` per run,
turns the engine's events into the app's messages (posted, never awaited: the training thread
never waits on the UI) and, when the worker itself fails outside `run()`, has the engine save a
`failed` record (`runner.save_failed`) for the run that was in progress. The app keeps the
screens; this module keeps the training. torch loads inside the worker, never at start-up.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from ftbench.engine.events import (
    Eval, EvalProgress, Event, GpuSample, Log, RunStarted, Step, StepProgress,
)
from ftbench.text import one_line
from ftbench.tui.messages import (
    EvalDone, EvalMoved, GpuSampled, ItemStarted, LogLine, QueueDone, Refused, RunBegan,
    RunEnded, StepMetrics, StepMoved,
)
from ftbench.tui.session import QueueItem, RunQueue

if TYPE_CHECKING:
    from ftbench.prepare import Prepared
    from ftbench.tui.app import FtbenchApp

TRAINING = "training"

# engine event -> the app message that announces it (a message may coalesce; the feed keeps all)
_MESSAGES: tuple[tuple[type, Callable[[QueueItem, Any], Any]], ...] = (
    (Step, StepMetrics),
    (StepProgress, StepMoved),
    (EvalProgress, EvalMoved),
    (GpuSample, GpuSampled),
    (Eval, EvalDone),
    (Log, LogLine),
    (RunStarted, RunBegan),
)


class TrainingController:
    """One app's training: the queue, the worker and failure handling."""

    def __init__(self, app: "FtbenchApp") -> None:
        self.app = app
        self.queue: RunQueue | None = None

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
        from ftbench.errors import FtbenchError
        from ftbench.prepare import gate

        gated: dict[int, Any] = {}  # id(the start's Prepared) -> what its gates returned
        while (taken := queue.take_next()) is not None:
            item, cancel = taken
            batch = item.batch
            if batch is not None and id(batch) not in gated:
                try:  # an unwritable runs folder, the hub, a run that will not fit...
                    gated[id(batch)] = gate(batch, self.app.runs_dir)
                except FtbenchError as exc:
                    queue.refuse(item, str(exc))
                    self.post(Refused(item, str(exc)))
                    continue
            from ftbench.engine.runner import run  # torch and transformers load here

            self.post(ItemStarted(queue, item))
            if self.app.runner is not None:  # e.g. a torchrun launch (ftbench.distributed)
                finished = self.app.runner(item.spec, self.emitter(item), cancel,
                                           runs_dir=self.app.runs_dir)
            else:
                finished = run(item.spec, self.emitter(item), cancel, runs_dir=self.app.runs_dir,
                               hooks=self.app.hooks)
            queue.finish(item, finished.record, finished.path)
            self.post(RunEnded(item, finished))
        self.post(QueueDone(queue))

    def post(self, message: Any) -> None:
        """post_message that never raises into the engine (the app may be closing)."""
        try:
            self.app.post_message(message)
        except Exception:
            pass

    def emitter(self, item: QueueItem) -> Callable[[Event], None]:
        """The ``emit`` for one run: the event goes to the item's feed, then a message."""
        feed = item.feed
        post = self.post

        def emit(event: Event) -> None:
            feed.add(event)  # first the feed (every point kept), then a notice (may coalesce)
            for kind, message in _MESSAGES:
                if isinstance(event, kind):
                    post(message(item, event))
                    return

        return emit

    def failed(self, error: BaseException | None) -> str:
        """The worker failed outside `run()`: keep or save the record of the run in progress,
        skip the rest of the queue, and return the reason in one line."""
        from ftbench.errors import FtbenchError

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
            from ftbench.engine.runner import save_failed

            finished = save_failed(item.spec, text, runs_dir=self.app.runs_dir, hooks=self.app.hooks)
            queue.finish(item, finished.record, finished.path)
        queue.stop()
        queue.take_next()  # marks the rest skipped
        return text
