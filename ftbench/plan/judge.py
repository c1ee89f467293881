"""How far a run's stored prediction was from what the run measured (for compare and the TUI).

On CUDA the prediction's ``memory.peak_mb`` predicts ``memory.torch_peak_allocated_mb``. On a
CPU it predicts the RSS growth from just before the model loaded: the record's sampled
``memory.process_peak_rss_mb`` minus the ``baseline_rss_mb`` stored with the prediction
(sampled every 0.5 s, so a short peak can be missed; `benchmarks/plan_accuracy.py` reads the
kernel's high-water mark instead). Pure Python, no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PredictionError:
    predicted_mb: float
    measured_mb: float
    measure: str                # what was measured, in words
    trainable_exact: bool | None

    @property
    def error(self) -> float:
        """(predicted - measured) / measured."""
        return (self.predicted_mb - self.measured_mb) / self.measured_mb


def prediction_error(record: Any) -> PredictionError | None:
    """None when the record has no prediction or the matching measurement is missing."""
    pred = record.prediction
    if not isinstance(pred, dict):
        return None
    predicted = _number((pred.get("memory") or {}).get("peak_mb"))
    if predicted is None:
        return None
    device = (pred.get("device") or {}).get("kind")
    if device == "cuda":
        measured = _number(record.memory.get("torch_peak_allocated_mb"))
        measure = "torch.cuda.max_memory_allocated"
    else:
        peak, base = _number(record.memory.get("process_peak_rss_mb")), _number(pred.get("baseline_rss_mb"))
        measured = peak - base if peak is not None and base is not None else None
        measure = "process RSS growth from before the model loaded (sampled every 0.5 s)"
    if measured is None or measured <= 0:
        return None
    trainable = (pred.get("params") or {}).get("trainable")
    actual = record.params.get("trainable")
    exact = trainable == actual if trainable is not None and actual is not None else None
    return PredictionError(predicted, measured, measure, exact)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
