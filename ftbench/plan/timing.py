"""Predicted time per step and per run, from the analytic FLOPs and a stated throughput basis.

FLOPs per step come from `ftbench.engine.flops.count_training_flops` on the meta model (the
count a run records), for ``batch x max_length`` tokens: an upper bound, since dynamic padding
trains on fewer. The throughput, in order of preference:

1. **calibrated**: the median achieved TFLOP/s of this machine's saved, completed runs of the
   same model and method on the same device (``timing.achieved_tflops`` in their records);
2. **datasheet**: the device's dense peak for the run's dtype (`ftbench.engine.flops`) at an
   assumed MFU of `DEFAULT_MFU`;
3. **calibrated (other runs)**: on a CPU, which has no honest datasheet peak, the median
   achieved TFLOP/s of this machine's saved CPU runs of any model and method;
4. none: the time is unknown, and the basis says why.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from ftbench.engine.flops import peak_tflops
from ftbench.engine.trainargs import planned_steps  # noqa: F401  (one rule, shared with the engine)

DEFAULT_MFU = 0.30


@dataclass(frozen=True)
class TimeEstimate:
    flops_per_step: float
    tflops: float | None        # the throughput used
    basis: str                  # where that throughput came from, in words
    step_s: float | None
    steps: int | None
    run_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same_device(record: Any, kind: str, device_name: str | None, cpu: str | None) -> bool:
    env = record.environment
    if kind == "cuda":
        return bool(device_name) and env.get("device_name") == device_name
    return env.get("device_name") is None and env.get("cpu") == cpu


def calibrate(records: Iterable[Any], model: str, method: str, precision: str, kind: str,
              device_name: str | None, cpu: str | None) -> tuple[float | None, int, bool]:
    """(median achieved TFLOP/s, runs used, same model+method?) from saved records."""
    same: list[float] = []
    other: list[float] = []
    for r in records:
        achieved = r.timing.get("achieved_tflops")
        if r.status != "completed" or not isinstance(achieved, (int, float)) or achieved <= 0:
            continue
        if not _same_device(r, kind, device_name, cpu):
            continue
        if r.environment.get("precision") not in (None, precision):
            continue
        (same if (r.model, r.method) == (model, method) else other).append(float(achieved))
    if same:
        return statistics.median(same), len(same), True
    if other and kind == "cpu":
        return statistics.median(other), len(other), False
    return None, 0, False


def estimate_time(flops_per_step: float, steps: int | None, *, model: str, method: str,
                  precision: str, kind: str, device_name: str | None, cpu: str | None,
                  records: Iterable[Any] = (), recompute_flops: float = 0.0) -> TimeEstimate:
    """``recompute_flops``: the forward pass gradient checkpointing repeats per step. Model
    FLOPs (and so MFU and the achieved TFLOP/s of saved runs) leave it out; the datasheet
    basis adds it, since the device executes it."""
    achieved, n, same = calibrate(records, model, method, precision, kind, device_name, cpu)
    tflops: float | None
    if achieved is not None and same:
        tflops, basis = achieved, (f"calibrated: median of {n} saved run(s) of {model} · {method} "
                                   f"on this device ({achieved:.3g} TFLOP/s achieved)")
    else:
        peak, source = peak_tflops(device_name if kind == "cuda" else None, precision)
        if peak:
            tflops = peak * DEFAULT_MFU
            basis = f"{source} {peak:g} TFLOP/s at an assumed MFU of {DEFAULT_MFU:.0%}"
        elif achieved is not None:
            tflops, basis = achieved, (f"calibrated from {n} saved CPU run(s) of other models or "
                                       f"methods on this machine ({achieved:.3g} TFLOP/s achieved)")
        else:
            tflops, basis = None, f"no throughput basis: {source}; no saved runs on this device yet"
    executed = flops_per_step + (recompute_flops if not (achieved is not None and same) else 0.0)
    step_s = executed / (tflops * 1e12) if tflops else None
    run_s = step_s * steps if step_s is not None and steps is not None else None
    return TimeEstimate(flops_per_step, tflops, basis, step_s, steps, run_s)
