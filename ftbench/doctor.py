"""`ftbench doctor`: one screen saying what this machine can do.

Each check is independent and never raises: a broken check says why in its row. Exit 0
always, unless ftbench itself cannot import its own modules.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.table import Table

from ftbench.quiet import quiet_libraries


@dataclass
class Check:
    name: str
    ok: bool | None  # None: informational
    detail: str


def _torch() -> list[Check]:
    if importlib.util.find_spec("torch") is None:
        return [Check("torch", False, "not installed: pip install torch==2.13.0 (CPU) or a CUDA build")]
    import torch  # seconds: imported in its own check, under its progress line, once found

    checks = [Check("torch", True, f"{torch.__version__} ({torch.get_num_threads()} threads)")]
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        bf16 = "bf16" if torch.cuda.is_bf16_supported() else "fp16 (no bf16)"
        checks.append(Check("CUDA", True, f"{torch.version.cuda} · {name} · auto precision {bf16}"))
    else:
        checks.append(Check("CUDA", None, "no CUDA device: runs use the CPU in fp32"))
    return checks


def _nvml() -> list[Check]:
    # in the check: run_checks turns a failed import into this check's row, not a crash
    from ftbench.engine.telemetry import nvml_info

    info = nvml_info()
    if info.available:
        return [Check("NVML", True, f"{info.name} · {info.total_mb:,.0f} MB · driver {info.driver}")]
    return [Check("NVML", None, f"{info.reason}; GPU memory will be null in records")]


def _bitsandbytes() -> list[Check]:
    try:
        # in the check, inside the try: a failed import is this check's row, not a crash
        from ftbench.methods import qlora_available
    except ImportError as exc:
        return [Check("bitsandbytes", False, f"cannot check: {exc}")]
    ok, why = qlora_available()
    return [Check("bitsandbytes (QLoRA)", ok, why)]


def _bundles() -> list[Check]:
    # in the check: run_checks turns a failed import into this check's row, not a crash
    from ftbench import bundles

    out = []
    for label, probe in bundles.doctor_probes().items():
        present, detail = probe()
        out.append(Check(label, present if present else None, detail))
    return out


def _hub() -> list[Check]:
    # in the check: run_checks turns a failed import into this check's row, not a crash
    from ftbench.hub import hub_reachable

    ok, why = hub_reachable()
    detail = "reachable: hub presets can run" if ok else f"{why}: use --offline for hub presets"
    return [Check("Hugging Face hub", ok if ok else None, detail)]


def _presets() -> list[Check]:
    # in the check: run_checks turns a failed import into this check's row, not a crash
    from ftbench.presets import load_all, runnable_here

    errors: list[str] = []
    presets = load_all(errors.append)
    rows = [Check(f"preset {p.name}", None, runnable_here(p)) for p in presets]
    rows += [Check("preset error", False, e) for e in errors]
    return rows


CHECKS: list[Callable[[], list[Check]]] = [_torch, _nvml, _bitsandbytes, _bundles, _hub, _presets]


PROGRESS = {"_torch": "importing torch", "_nvml": "asking NVML for a GPU",
            "_bitsandbytes": "importing bitsandbytes", "_bundles": "looking for bundles",
            "_hub": "reaching the Hugging Face hub", "_presets": "checking the presets"}


def run_checks(on_progress: Callable[[str], None] | None = None) -> list[Check]:
    """Every check in order; ``on_progress`` hears what each one is about to do (some take
    seconds: importing torch, reaching the hub)."""
    quiet_libraries()
    checks = [Check("python", sys.version_info >= (3, 11), platform.python_version())]
    for i, probe in enumerate(CHECKS, 1):
        if on_progress is not None:
            on_progress(f"{PROGRESS.get(probe.__name__, probe.__name__.strip('_'))}… "
                        f"({i}/{len(CHECKS)})")
        try:
            checks.extend(probe())
        except Exception as exc:  # a check must never take the doctor down
            checks.append(Check(probe.__name__.strip("_"), False, f"check failed: {exc}"))
    return checks


def main(as_json: bool = False) -> int:
    progress = Console(stderr=True)
    if progress.is_terminal:  # what it is doing, on stderr, while it does it
        with progress.status("ftbench doctor") as status:
            checks = run_checks(lambda text: status.update(f"ftbench doctor: {text}"))
    else:
        checks = run_checks()
    if as_json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
        return 0
    table = Table(title="ftbench doctor", show_header=False)
    table.add_column("", width=2)
    table.add_column("check", style="bold")
    table.add_column("detail", overflow="fold")
    for c in checks:
        mark = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]·[/]"}[c.ok]
        table.add_row(mark, c.name, c.detail)
    Console().print(table)
    return 0
