"""One preparation for every way runs start: a preset and its overrides, resolved for the device
the runs will train on, with every gate run once.

* `resolve` expands the methods x seeds (`presets.expand`) and applies the preset's
  per-device ``[offline]`` settings for the device: the specs it returns are final (one
  learning rate, nothing left per device), and the engine trains them as they are.
* `plan` adds one prediction per method (`ftbench.plan.runs`).
* `gate` runs the checks a run must pass before anything loads, once each and in this order:
  the trackers (``--report-to``), the hub, a writable runs folder, and fit (on a GPU, a run
  predicted not to fit stops unless forced).
* `prepare` does all of it.

`ftbench plan` resolves with the same function for the device it plans for, so what is planned
is what is trained. `ftbench run` (headless, live in the TUI, through torchrun, over the device
queue) prepares here, and so does the TUI's start dialog (in a worker: planning imports torch).

Which device: `device_for` asks NVML for a GPU and, only when there is one, torch whether it
can use it (the engine's own test, ``torch.cuda.is_available()``); a machine without a GPU
never imports torch here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ftbench import preflight
from ftbench.plan import device as devices
from ftbench.plan import runs as planned
from ftbench.plan.preflight import DoesNotFit, gates_fit, refusal
from ftbench.presets import expand
from ftbench.quiet import quiet_libraries
from ftbench.results import store
from ftbench.spec import RunSpec, amend

if TYPE_CHECKING:  # pragma: no cover
    from ftbench.plan.device import DeviceInfo
    from ftbench.plan.runs import MethodPlan
    from ftbench.presets import Overrides
    from ftbench.spec import Preset


@dataclass(frozen=True)
class Prepared:
    """Runs ready to start: final specs for ``device``, their plans once made, and whether the
    gates have run (``gated``) and fit was waived (``forced``)."""

    preset: str
    device: DeviceInfo
    specs: tuple[RunSpec, ...]
    plans: tuple[MethodPlan, ...] | None = None
    gated: bool = False
    forced: bool = False

    @classmethod
    def given(cls, preset: str, specs: Iterable[RunSpec], device: DeviceInfo | None = None) -> Prepared:
        """Runs built by hand (tests, benchmarks): trained as given, gated like any other.
        ``device``: what they are for (default: this machine, `device_for`)."""
        return cls(preset, device or device_for(), tuple(specs))

    def refusal(self) -> str | None:
        """The line that refuses these runs (a planned run that would not fit), or None."""
        return refusal(self.plans or (), self.device)


def device_for(kind: str | None = None, index: int = 0) -> DeviceInfo:
    """The device runs will train on: ``kind`` "cpu" or "cuda" (GPU ``index``), or by default
    this machine as the engine will see it."""
    if kind == "cpu":
        return devices.cpu_device()
    probed = devices.probe_device(index)
    if kind == "cuda":
        return probed if probed.kind == "cuda" else devices.DeviceInfo(
            "cuda", None, None, None, f"GPU {index} not readable through NVML")
    if probed.kind == "cuda" and not _torch_uses_cuda():
        return replace(devices.cpu_device(), source="psutil available RAM (torch cannot use the GPU "
                                                    "NVML reports)")
    return probed


def _torch_uses_cuda() -> bool:
    quiet_libraries()
    # after quiet_libraries(), and only for a GPU NVML found: a machine without one never loads torch
    import torch

    return bool(torch.cuda.is_available())


def resolve(preset: Preset, overrides: Overrides, device: DeviceInfo) -> Prepared:
    """The preset's runs with ``overrides``, final for ``device`` (no gate runs here)."""
    kind = "cuda" if device.kind == "cuda" else "cpu"
    settings: dict[str, Any] | None = None
    if overrides.offline and preset.offline_device:
        # sizes given on the command line (or in the dialog) win over the preset's
        settings = {k: v for k, v in preset.offline_device.get(kind, {}).items()
                    if getattr(overrides, k, None) is None}
    specs = tuple(sized(spec, kind, settings) for spec in expand(preset, overrides))
    return Prepared(preset.name, device, specs)


def sized(spec: RunSpec, kind: str, settings: dict[str, Any] | None) -> RunSpec:
    """``spec`` for a ``kind`` device: with ``settings`` (the preset's [offline] settings for
    it: train_size, eval_size, learning_rate) applied and said in words (``sizing``, and among
    the substitutions when something changed); None: the preset has no per-device settings."""
    if settings is None:
        return amend(spec, resolved_for=kind)
    where = "a CUDA GPU" if kind == "cuda" else "a machine without a CUDA GPU"
    changes: list[str] = []
    data, train = spec.data, spec.train
    sizes = {k: v for k, v in settings.items() if k in ("train_size", "eval_size")}
    if sizes:
        changes += [f"{k} {getattr(data, k) or 'all'} -> {v}" for k, v in sizes.items()]
        data = amend(data, **sizes)
    if "learning_rate" in settings:
        changes.append(f"learning_rate {train.learning_rate:g} -> {settings['learning_rate']:g}")
        train = amend(train, learning_rate=settings["learning_rate"])
    if not changes:
        return amend(spec, resolved_for=kind,
                     sizing=f"--offline on {where}: the preset's own sizes and settings")
    note = f"--offline on {where}: " + ", ".join(changes) + " (the preset's [offline] settings)"
    return amend(spec, data=data, train=train, resolved_for=kind, sizing=note,
                 substitutions=spec.substitutions + (note,))


def plan(prepared: Prepared, records: Iterable[Any] = ()) -> Prepared:
    """``prepared`` with one prediction per method (kept if it has them already)."""
    if prepared.plans is not None:
        return prepared
    return replace(prepared, plans=planned.plan_runs(prepared.specs, prepared.device, records))


def gate(prepared: Prepared, runs_dir: Any = None, *, force: bool | None = None) -> Prepared:
    """Run every gate once (a no-op for runs already gated); raise `FtbenchError` with one
    line for the first that fails. Fit plans the runs if they are not planned yet (on a GPU
    only: a CPU is never refused, so neither planned nor torch loaded for it); ``force`` (default:
    ``prepared.forced``) waives it."""
    if prepared.gated:
        return prepared
    force = prepared.forced if force is None else force
    specs = list(prepared.specs)
    preflight.check_trackers(specs[0].report_to if specs else ())
    preflight.preflight(specs)
    store.check_writable(store.runs_dir(runs_dir))  # before training, not after it
    if not force:
        if gates_fit(prepared.device):
            prepared = plan(prepared)
            line = prepared.refusal()
            if line is not None:
                raise DoesNotFit(line)
    return replace(prepared, gated=True, forced=force)


def prepare(preset: Preset, overrides: Overrides, *, device: DeviceInfo | None = None,
            runs_dir: Any = None, force: bool = False) -> Prepared:
    """`resolve` for ``device`` (default: this machine), then `gate`."""
    return gate(resolve(preset, overrides, device or device_for()), runs_dir, force=force)
