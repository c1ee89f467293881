"""The run gate on memory: a run whose predicted peak exceeds the GPU's free memory stops before
anything loads, with one line and the batch size that fits (exit 2), unless forced
(``--force`` on the command line, "Run anyway" in the TUI's start dialog).

Only on a GPU with a known free memory (NVML): on a CPU the OS pages and the prediction is
advice, not a gate. A prediction that cannot be made never blocks a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ftbench.errors import FtbenchError
from ftbench.plan.device import probe_device
from ftbench.plan.runs import plan_runs
from ftbench.spec import RunSpec

if TYPE_CHECKING:  # pragma: no cover
    from ftbench.plan.device import DeviceInfo
    from ftbench.plan.runs import MethodPlan


class DoesNotFit(FtbenchError):
    """The predicted peak of a run exceeds the free device memory."""


def gates_fit(device: DeviceInfo) -> bool:
    """Whether runs on ``device`` are refused when predicted not to fit."""
    return device.kind == "cuda" and device.free_mb is not None


def refusal(plans: Sequence[MethodPlan], device: DeviceInfo) -> str | None:
    """The line that refuses the first planned run that would not fit, or None."""
    if not gates_fit(device):
        return None
    for plan in plans:
        p = plan.prediction
        if p is None or p.fits is not False:
            continue
        spec = plan.spec
        batch = (f"batch_size {p.largest_batch} fits" if p.largest_batch
                 else "not even batch_size 1 fits; try qlora or gradient_checkpointing")
        return (f"{spec.method.name} on {spec.model}: predicted peak {p.peak_mb:,.0f} MB, "
                f"{p.device_total_mb:,.0f} MB with the CUDA context and allocator reserve, "
                f"exceeds the {device.free_mb:,.0f} MB free on {device.name or 'the GPU'} at "
                f"batch_size {p.batch_size} x {p.max_length} tokens; {batch} "
                "(--force runs it anyway)")
    return None


def check_fit(specs: list[RunSpec], device: Any = None) -> None:
    """Raise `DoesNotFit` for the first run that would not fit. ``device``: a `DeviceInfo`
    (tests); default: NVML's view of GPU 0."""
    device = device or probe_device()
    if not gates_fit(device):
        return
    line = refusal(plan_runs(specs, device), device)
    if line is not None:
        raise DoesNotFit(line)
