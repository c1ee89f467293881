"""How far a run's stored prediction was from what the run measured (compare, the run detail).

On CUDA the prediction's PEAK (``memory.peak_mb``) predicts ``memory.torch_peak_allocated_mb``.

On a CPU the measurement is the RSS growth from just before the model loaded: the record's
``memory.process_peak_rss_mb`` (the kernel's high-water mark since that baseline,
`ftbench.engine.hostmem`) minus the ``baseline_rss_mb`` stored with the prediction. That growth
includes the freed heap glibc keeps resident (its dynamic mmap threshold), which the plan counts
in "needs" (``memory.device_total_mb``: PEAK plus that heap), not in PEAK; so a CPU run is judged
against needs. Measured on this project's 2-core CPU, the quickstart in one process (full, LoRA,
head-only, bf16; docs/plan-vs-measured.md): needs was 24 % and 33 % below the growth for full
and LoRA, and 59 % below it for head-only, whose growth is mostly heap glibc retains (the plan
counts its forward working set now, not that heap).

A CPU run is "not measurable", with the reason, when its growth cannot be trusted: it was
recorded before ftbench measured from a trimmed baseline (an earlier run's freed heap, reused
without growing, hid part of it), or its window could not be opened as intended (no kernel
high-water mark to reset, no ``malloc_trim``). Pure Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CPU_MEASURE = "process RSS growth from before the model loaded (kernel high-water mark)"
GPU_MEASURE = "torch.cuda.max_memory_allocated"
OLD_CPU_RECORD = ("recorded before ftbench measured RSS from a trimmed baseline: after an "
                  "earlier run in the same process, its freed heap hides part of the growth")


@dataclass(frozen=True)
class PredictionError:
    predicted_mb: float
    measured_mb: float | None
    measure: str                # what was measured, in words
    predicted: str              # which of plan's figures: "peak" or "needs"
    trainable_exact: bool | None
    unmeasurable: str | None = None  # why the measurement cannot be trusted; None when it can

    @property
    def error(self) -> float | None:
        """(predicted - measured) / measured; None when not measurable."""
        if self.unmeasurable is not None or not self.measured_mb:
            return None
        return (self.predicted_mb - self.measured_mb) / self.measured_mb

    def to_dict(self) -> dict[str, Any]:
        return {"predicted_mb": self.predicted_mb, "predicted": self.predicted,
                "measured_mb": self.measured_mb, "measure": self.measure, "error": self.error,
                "unmeasurable": self.unmeasurable, "trainable_exact": self.trainable_exact}


def prediction_error(record: Any) -> PredictionError | None:
    """None when the record has no prediction, or its run measured nothing to compare (it
    stopped before training)."""
    pred = record.prediction
    if not isinstance(pred, dict):
        return None
    memory = pred.get("memory") or {}
    peak = _number(memory.get("peak_mb"))
    if peak is None:
        return None
    trainable = (pred.get("params") or {}).get("trainable")
    actual = record.params.get("trainable")
    exact = trainable == actual if trainable is not None and actual is not None else None
    if (pred.get("device") or {}).get("kind") == "cuda":
        measured = _number(record.memory.get("torch_peak_allocated_mb"))
        if measured is None or measured <= 0:
            return None
        return PredictionError(peak, measured, GPU_MEASURE, "peak", exact)
    rss, base = _number(record.memory.get("process_peak_rss_mb")), _number(pred.get("baseline_rss_mb"))
    if rss is None or base is None:
        return None
    needs = _number(memory.get("device_total_mb"))
    window = pred.get("rss_window")
    problem = window.get("problem") if isinstance(window, dict) else OLD_CPU_RECORD
    measured = rss - base
    if measured <= 0 and problem is None:
        problem = f"RSS did not grow ({measured:+.0f} MB): nothing was measured"
    return PredictionError(needs if needs is not None else peak, measured, CPU_MEASURE,
                           "needs" if needs is not None else "peak", exact,
                           str(problem) if problem else None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
