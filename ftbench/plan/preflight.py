"""`ftbench run`'s memory check: a run whose predicted peak exceeds the GPU's free memory stops
before anything loads, with one line and the batch size that fits (exit 2), unless ``--force``.

Only on a GPU (NVML): on a CPU the OS pages and the prediction is advice, not a gate. A
prediction that cannot be made never blocks a run.
"""

from __future__ import annotations

from typing import Any

from ftbench.errors import FtbenchError
from ftbench.spec import RunSpec


class DoesNotFit(FtbenchError):
    """The predicted peak of a run exceeds the free device memory."""


def check_fit(specs: list[RunSpec], device: Any = None) -> None:
    """Raise `DoesNotFit` (one line, the batch that fits, ``--force``) for the first run that
    would not fit. ``device``: a `DeviceInfo` (tests); default: NVML's view of GPU 0."""
    from ftbench.plan.device import probe_device

    device = device or probe_device()
    if device.kind != "cuda" or device.free_mb is None:
        return
    from ftbench.plan.estimate import predict

    seen: set[tuple[str, str]] = set()
    for spec in specs:
        key = (spec.model, spec.method.name)
        if key in seen:
            continue
        seen.add(key)
        try:
            p = predict(spec, device)
        except Exception:
            continue
        if p.fits is False:
            batch = (f"batch_size {p.largest_batch} fits" if p.largest_batch
                     else "not even batch_size 1 fits; try qlora or gradient_checkpointing")
            raise DoesNotFit(
                f"{spec.method.name} on {spec.model}: predicted peak {p.peak_mb:,.0f} MB, "
                f"{p.device_total_mb:,.0f} MB with the CUDA context and allocator reserve, "
                f"exceeds the {device.free_mb:,.0f} MB free on {device.name or 'the GPU'} at "
                f"batch_size {spec.train.batch_size} x {spec.train.max_length} tokens; {batch} "
                "(--force runs it anyway)")
