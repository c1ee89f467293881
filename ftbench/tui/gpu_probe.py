"""The GPU as NVML sees it right now, for the Memory panel before a run's own samples start.

A queued run spends tens of seconds importing torch and loading the model before the engine's
telemetry thread samples NVML; the panel shows the device in the meantime (name, total, used)
from here. NVML only, never torch, and called from a worker thread, never the UI thread.
``sampler`` is the engine's GPU query (`ftbench.engine.telemetry.GpuSampler`; None: NVML
here): a test's fills a `TelemetrySample` in place of the NVML query, so a GPU can be
simulated on a CPU machine; the sample's ``gpu_index`` says which GPU is read, so a sampler
can simulate several (`gpus_now`).
"""

from __future__ import annotations

from typing import Any, Callable

from ftbench.engine.telemetry import MB, TelemetrySample


def gpu_now(sampler: Callable[[TelemetrySample], None] | None = None,
            index: int = 0) -> TelemetrySample | None:
    """One reading of GPU ``index`` (used, total MB, utilisation), or None when there is
    none to read. Never raises."""
    sample = TelemetrySample(t=0.0, rss_mb=None, gpu_index=index)
    try:
        if sampler is not None:
            sampler(sample)
        else:
            _nvml(sample, index)
    except Exception:
        return None
    return sample if sample.gpu_used_mb is not None else None


def gpus_now(sampler: Callable[[TelemetrySample], None] | None,
             indices: tuple[int, ...]) -> tuple[TelemetrySample, ...]:
    """One reading of each GPU in ``indices`` (NVML indices); one that cannot be read has no
    ``gpu_used_mb``. Never raises."""
    return tuple(gpu_now(sampler, index) or TelemetrySample(t=0.0, rss_mb=None, gpu_index=index)
                 for index in indices)


def _nvml(sample: TelemetrySample, index: int) -> None:
    import pynvml  # inside gpu_now's try: without pynvml there is no reading, not an error

    pynvml.nvmlInit()  # reference-counted by NVML: cheap after the start-up probe
    handle: Any = pynvml.nvmlDeviceGetHandleByIndex(index)
    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    sample.gpu_used_mb = mem.used / MB
    sample.gpu_total_mb = mem.total / MB
    try:
        sample.gpu_util = float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        sample.gpu_util = None
