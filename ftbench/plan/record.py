"""The prediction a run stores in its record (``record.prediction``), made before the model loads.

The front ends pass `prediction_for_record` to the engine (``run(..., predict=...)``): the
engine sits below the planner and does not import it. The engine adds the host-memory baseline
the prediction is compared with (`ftbench.engine.hostmem.run_baseline`).
"""

from __future__ import annotations

from typing import Any, Callable

from ftbench.plan.device import DeviceInfo, cpu_device, probe_device
from ftbench.plan import estimate
from ftbench.spec import RunSpec


def prediction_for_record(spec: RunSpec, device: str, model_kwargs: dict[str, Any],
                          log: Callable[[str, str], None] | None = None) -> dict[str, Any] | None:
    """``predict(spec).to_dict()`` for the device the run uses, or None if planning fails (a
    prediction must never cost a run its record; the failure is logged as a warning)."""
    try:
        info = probe_device() if device == "cuda" else cpu_device()
        if info.kind != device:  # NVML unreadable on a CUDA run: plan for CUDA, free unknown
            info = DeviceInfo(device, None, None, None, "NVML unavailable")
        return estimate.predict(spec, info, num_labels=model_kwargs.get("num_labels")).to_dict()
    except Exception as exc:
        if log is not None:
            text = str(exc).strip().splitlines()
            log(f"no prediction for this run: {type(exc).__name__}: {text[0] if text else ''}", "warning")
        return None
