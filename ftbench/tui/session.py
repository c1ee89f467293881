"""What the TUI is running: a queue of runs and, per run, the engine's events as they arrive.

Pure Python (no Textual, no torch) so it can be tested on its own. Two threads touch it:

- the training worker takes items with `RunQueue.take_next`, appends engine events to the
  item's `LiveFeed` (and log lines to the queue's log) and never waits on the UI;
- the UI reads feeds (``list(...)`` copies are atomic under the GIL) and asks for a cancel
  with `RunQueue.cancel_current`.

The queue's own bookkeeping (statuses, stop flag, the cancel event) is guarded by one lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from ftbench.engine.events import (
    CancelRequest, Eval, EvalProgress, Event, GpuSample, Log, RunFinished, RunStarted, Step,
    StepProgress,
)
from ftbench.tasks.info import primary_metric_in

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord
    from ftbench.spec import RunSpec

# Queue item statuses: the record statuses, plus the two states before and one instead of a run.
QUEUED, RUNNING, SKIPPED = "queued", "running", "skipped"
monotonic = time.monotonic  # the clock the live panels tick by (tests pin it)
FINAL = ("completed", "failed", "cancelled", "diverged", SKIPPED)
LOG_LIMIT = 2000


@dataclass
class LiveFeed:
    """The events of one run, in arrival order. Appended by the training thread only."""

    started: RunStarted | None = None
    steps: list[Step] = field(default_factory=list)
    evals: list[Eval] = field(default_factory=list)
    gpu: list[GpuSample] = field(default_factory=list)
    logs: list[Log] = field(default_factory=list)
    finished: RunFinished | None = None
    progress: StepProgress | None = None  # the newest optimizer step (between logging steps)
    evaluating: EvalProgress | None = None  # set while an evaluation runs
    # (training seconds, monotonic() when they were measured): the clock the UI ticks
    clock: tuple[float, float] | None = None
    eval_clock: tuple[float, float] | None = None

    def add(self, event: Event) -> None:
        if isinstance(event, Step):
            self.steps.append(event)
            self.clock = (event.elapsed_s, monotonic())
        elif isinstance(event, StepProgress):
            self.progress = event
            self.clock = (event.elapsed_s, monotonic())
        elif isinstance(event, EvalProgress):
            if self.evaluating is None and self.clock is not None:  # training pauses here
                self.clock = (self.train_elapsed() or 0.0, monotonic())
            self.evaluating = event
            self.eval_clock = (event.elapsed_s, monotonic())
        elif isinstance(event, GpuSample):
            self.gpu.append(event)
        elif isinstance(event, Eval):
            self.evals.append(event)
            self.evaluating = None
            if self.clock is not None:  # evaluation time is not training time
                self.clock = (self.clock[0], monotonic())
        elif isinstance(event, Log):
            if len(self.logs) < LOG_LIMIT:
                self.logs.append(event)
        elif isinstance(event, RunStarted):
            self.started = event
        elif isinstance(event, RunFinished):
            self.finished = event
            self.evaluating = None

    @property
    def last_step(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    @property
    def step(self) -> int:
        """The newest optimizer step known (progress events run ahead of logging steps)."""
        logged = self.steps[-1].step if self.steps else 0
        return max(logged, self.progress.step if self.progress else 0)

    @property
    def total_steps(self) -> int:
        if self.started is not None:
            return self.started.total_steps
        return self.progress.total_steps if self.progress else 0

    def train_elapsed(self, now: float | None = None) -> float | None:
        """Training seconds so far, ticking with the wall clock between events (frozen
        while evaluating and once the run has finished)."""
        if self.clock is None:
            return None
        elapsed, at = self.clock
        if self.evaluating is not None or self.finished is not None:
            return elapsed
        return elapsed + max(0.0, (monotonic() if now is None else now) - at)

    def eval_elapsed(self, now: float | None = None) -> float | None:
        if self.evaluating is None or self.eval_clock is None:
            return None
        elapsed, at = self.eval_clock
        return elapsed + max(0.0, (monotonic() if now is None else now) - at)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds of training left at the mean step time so far (evaluations not included)."""
        step, total, elapsed = self.step, self.total_steps, self.train_elapsed(now)
        if not step or not total or elapsed is None or step > total:
            return None
        return (total - step) * elapsed / step


@dataclass
class QueueItem:
    """One run of the queue: its spec, where it stands, and (once ended) its record."""

    index: int
    spec: "RunSpec"
    status: str = QUEUED
    # the start it came from (a `ftbench.prepare.Prepared`): its gates run once, before the
    # first of its runs trains
    batch: Any = None
    feed: LiveFeed = field(default_factory=LiveFeed)
    record: "RunRecord | None" = None
    path: str | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return f"{self.spec.method.name} · seed {self.spec.seed}"

    @property
    def done(self) -> bool:
        return self.status in FINAL


class RunQueue:
    """The runs of one start (a preset's methods × seeds), run in order by one worker."""

    def __init__(self, preset: str, specs: "list[RunSpec]", batch: Any = None) -> None:
        self.preset = preset
        self.items = [QueueItem(i, spec, batch=batch) for i, spec in enumerate(specs)]
        self._lock = threading.Lock()
        self._stop = False
        self._cancel = CancelRequest()
        self._current: QueueItem | None = None
        # What the log pane shows, in order: engine messages (appended by the worker as they
        # arrive) and the app's own notes (the UI thread), through `add_log`; the pane reads
        # it on its own (and replays it after a resize or a return).
        self.log: list[tuple[QueueItem | None, Log]] = []

    def __iter__(self) -> Iterator[QueueItem]:
        return iter(list(self.items))

    def __len__(self) -> int:
        return len(self.items)

    # --- worker side -------------------------------------------------------------------
    def take_next(self) -> tuple[QueueItem, CancelRequest] | None:
        """The next queued item, marked running, with a fresh cancel event; None when done.

        After a stop request the remaining items are marked skipped instead.
        """
        with self._lock:
            self._current = None
            for item in self.items:
                if item.status != QUEUED:
                    continue
                if self._stop:
                    item.status = SKIPPED
                    continue
                item.status = RUNNING
                self._cancel = CancelRequest()
                self._current = item
                return item, self._cancel
            return None

    def finish(self, item: QueueItem, record: "RunRecord", path: str | None) -> None:
        with self._lock:
            item.record = record
            item.path = path
            item.status = record.status
            item.error = record.error
            if self._current is item:
                self._current = None

    def fail(self, item: QueueItem, error: str) -> None:
        """The worker itself failed while running ``item`` (no record from the engine)."""
        with self._lock:
            item.status = "failed"
            item.error = error
            if self._current is item:
                self._current = None

    # --- UI side -----------------------------------------------------------------------
    @property
    def current(self) -> QueueItem | None:
        return self._current

    @property
    def stopping(self) -> bool:
        """The queue stops after the running item (no more items start)."""
        return self._stop

    @property
    def cancelling(self) -> bool:
        """A cancel was asked for the running item, which has not ended yet."""
        return self._current is not None and self._cancel.is_set()

    def cancel_current(self, *, stop_queue: bool, evaluate: bool = False) -> QueueItem | None:
        """Ask the running item to stop (it is saved as cancelled with the metrics it has, or
        after one evaluation at that step with ``evaluate``); optionally stop the queue."""
        with self._lock:
            if stop_queue:
                self._stop = True
            item = self._current
            if item is not None:
                self._cancel.request(evaluate=evaluate)
            return item

    def stop(self) -> None:
        """Cancel the running item and skip the rest (quitting)."""
        self.cancel_current(stop_queue=True)

    def refuse(self, item: QueueItem, reason: str) -> None:
        """A gate refused ``item``'s start: it and the rest of its start are skipped."""
        with self._lock:
            for other in self.items:
                if other is item or (other.batch is item.batch and other.status == QUEUED):
                    other.status, other.error = SKIPPED, reason
            if self._current is item:
                self._current = None

    def extend(self, specs: "list[RunSpec]", batch: Any = None) -> list[QueueItem]:
        with self._lock:
            start = len(self.items)
            added = [QueueItem(start + i, spec, batch=batch) for i, spec in enumerate(specs)]
            self.items.extend(added)
            if self._stop and self._current is None:
                self._stop = False
            return added

    def add_log(self, item: QueueItem | None, event: Log) -> None:
        """A line for the log pane: ``item``'s engine message, or (None) the app's own."""
        with self._lock:
            self.log.append((item, event))

    @property
    def finished(self) -> bool:
        return all(item.done for item in self.items)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return counts

    def position(self, item: QueueItem) -> str:
        return f"run {item.index + 1} of {len(self.items)}"

    def records(self) -> "list[RunRecord]":
        return [item.record for item in self.items if item.record is not None]



def summary(queue: RunQueue) -> str:
    """``2 completed, 1 cancelled`` for notifications."""
    counts = queue.counts()
    order = ("completed", "cancelled", "failed", "diverged", SKIPPED, RUNNING, QUEUED)
    return ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s))


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing), for the loss chart."""
    out: list[float] = []
    last = 0.0
    for i, value in enumerate(values, 1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**i))
    return out


def primary_eval_key(task: str, evals: list[Eval]) -> str | None:
    """The metric the live eval chart follows: the report's primary metric for the task."""
    return primary_metric_in(task, {k for ev in evals for k, v in ev.metrics.items() if _is_number(v)})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
