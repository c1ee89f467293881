"""Events the engine emits. Plain frozen dataclasses: front ends render them, nothing more.

The engine calls ``emit(event)`` from the training thread; a consumer must return quickly
(post to a queue / message pump), never block on drawing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Union

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


Event = Union[RunStarted, Step, Eval, GpuSample, Log, RunFinished]
Emit = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """An `Emit` that drops everything."""
