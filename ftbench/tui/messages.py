"""Messages the training worker posts to the app: small dataclasses, one per engine event.

The worker appends every event to the run's `LiveFeed` first, then posts one of these, so a
message is a "this changed" notice that carries the newest event for convenience. That makes
the high-rate ones (a step every logging interval, a GPU sample every 0.5 s) safe to coalesce:
when the UI falls behind, `can_replace` lets a newer notice of the same kind and run stand in
for the queued ones, and nothing is lost because the feed holds every point.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ftbench.engine.events import (
    Eval, EvalProgress, GpuSample, Log, RunFinished, RunStarted, Step, StepProgress,
)
from ftbench.tui.session import QueueItem, RunQueue


@dataclass
class RunBegan(Message):
    """The engine built the model and is about to train (total steps now known)."""

    item: QueueItem
    event: RunStarted


@dataclass
class StepMetrics(Message):
    item: QueueItem
    event: Step

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepMetrics) and message.item is self.item


@dataclass
class StepMoved(Message):
    """An optimizer step went by (a few a second at most): counter, clock, ETA."""

    item: QueueItem
    event: StepProgress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StepMoved) and message.item is self.item


@dataclass
class EvalMoved(Message):
    """An evaluation started or moved on (batches done of total)."""

    item: QueueItem
    event: EvalProgress

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EvalMoved) and message.item is self.item


@dataclass
class GpuSampled(Message):
    item: QueueItem
    event: GpuSample

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GpuSampled) and message.item is self.item


@dataclass
class EvalDone(Message):
    item: QueueItem
    event: Eval


@dataclass
class LogLine(Message):
    item: QueueItem | None
    event: Log


@dataclass
class ItemStarted(Message):
    """The worker took the next item off the queue (libraries, model and data load next)."""

    queue: RunQueue
    item: QueueItem


@dataclass
class RunEnded(Message):
    """A run ended with any status; its record is saved (or the event says why not)."""

    item: QueueItem
    event: RunFinished


@dataclass
class Refused(Message):
    """A gate refused a start before its first run trained (``reason``, one line): ``item``
    and the rest of its start are skipped."""

    item: QueueItem
    reason: str


@dataclass
class QueueDone(Message):
    queue: RunQueue
