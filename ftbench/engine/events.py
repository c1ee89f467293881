"""Events the engine emits. Plain frozen dataclasses: front ends render them, nothing more.

The engine calls ``emit(event)`` from the training thread; a consumer must return quickly
(post to a queue / message pump), never block on drawing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord


@dataclass(frozen=True)
class RunStarted:
    run_id: str
    preset: str
    method: str
    model: str
    dataset: str
    seed: int
    total_steps: int
    params: dict[str, Any]
    device: str
    data_source: str


@dataclass(frozen=True)
class Step:
    """One logging step. ``loss`` is the mean since the previous logging step."""

    run_id: str
    step: int
    total_steps: int
    epoch: float
    loss: float | None
    lr: float | None
    samples_per_s: float | None
    tokens_per_s: float | None
    elapsed_s: float
    eta_s: float | None
    torch_allocated_mb: float | None = None
    rss_mb: float | None = None


@dataclass(frozen=True)
class StepProgress:
    """Where training stands, after an optimizer step: no loss, so no device sync.

    Emitted after the first step, then at most a few times a second (host clock) and after
    the last step, so a front end can move its counter and ETA between logging steps.
    ``elapsed_s`` is training time so far (evaluation excluded).
    """

    run_id: str
    step: int
    total_steps: int
    epoch: float
    elapsed_s: float


@dataclass(frozen=True)
class EvalProgress:
    """An evaluation is running: ``done`` of ``total`` batches (``total`` None until known).

    The first one (``done`` 0) marks the start of the evaluation phase; the `Eval` event
    marks its end. ``step`` is the training step being evaluated.
    """

    run_id: str
    step: int
    done: int
    total: int | None
    elapsed_s: float


@dataclass(frozen=True)
class Eval:
    run_id: str
    step: int
    epoch: float
    metrics: dict[str, Any]
    eval_s: float


@dataclass(frozen=True)
class GpuSample:
    run_id: str
    t: float
    used_mb: float
    total_mb: float
    util: float | None
    torch_peak_allocated_mb: float | None = None
    torch_peak_reserved_mb: float | None = None


@dataclass(frozen=True)
class Log:
    run_id: str | None
    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True)
class RunFinished:
    """The run ended (any status). ``path`` is where its record was saved, or None."""

    record: "RunRecord"
    path: str | None
    save_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Event = RunStarted | Step | StepProgress | EvalProgress | Eval | GpuSample | Log | RunFinished
Emit = Callable[[Event], None]


class CancelRequest(threading.Event):
    """The ``cancel`` event a front end passes to ``run``, with the user's choice of ending.

    ``request()`` stops the run after the current step and saves it as cancelled with the
    metrics it already has; ``request(evaluate=True)`` first evaluates the model at that
    step (the "cancel and evaluate" choice). A plain `threading.Event` works as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.evaluate = False

    def request(self, *, evaluate: bool = False) -> None:
        self.evaluate = evaluate
        self.set()


def ignore(_event: Event) -> None:
    """An `Emit` that drops everything."""
