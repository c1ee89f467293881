"""Messages the training worker posts: small dataclasses, posted to the app and to every screen
that subscribed (`TrainingController.subscribe`); each handles what it shows.

The worker appends every engine event to the run's `LiveFeed` first, then posts one of these, so
a message is a "this changed" notice. `RunProgress` stands for every event during a run (steps,
progress, evaluations, GPU samples, log lines, the run's start): a newer one for the same run
replaces those still queued (`can_replace`), and nothing is lost because the feed holds every
point. The others mark the queue's life: an item taken, a run ended, a start refused, the queue
changed or done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.message import Message as _Message

from ftbench.engine.events import RunFinished
from ftbench.tui.session import QueueItem, RunQueue


class Message(_Message):
    """A training message: handled where it is posted. It never bubbles from a screen to the
    app, which gets its own copy (`TrainingController.post`)."""

    bubble: ClassVar[bool] = False


@dataclass
class RunProgress(Message):
    """Something happened in ``item``'s run: its feed (and the queue's log) has news."""

    item: QueueItem

    def can_replace(self, message: _Message) -> bool:
        return isinstance(message, RunProgress) and message.item is self.item


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
class QueueChanged(Message):
    """Runs joined the queue, a cancel was asked, or the worker failed: redraw it."""

    queue: RunQueue


@dataclass
class QueueDone(Message):
    queue: RunQueue
