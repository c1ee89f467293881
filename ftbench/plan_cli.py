"""`ftbench plan --preset P [run's overrides]`: a prediction per method, as a table or JSON.

Exit codes: 0 every method planned, 1 some could not be (each says why on stderr), 2 bad input
or nothing could be planned (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from ftbench.errors import FtbenchError
from ftbench.models import resolve_model
from ftbench.plan.device import DeviceInfo, cpu_device, probe_device
from ftbench.plan.render import plan_json, plan_table
from ftbench.prepare import device_for, plan, resolve
from ftbench.presets import load_preset
from ftbench.quiet import quiet_libraries
from ftbench.results.store import load_runs
from ftbench.terms import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def device_from_args(args: argparse.Namespace) -> Any:
    if args.gpu_name and args.device != "cuda":
        raise FtbenchError("--gpu-name needs --device cuda")
    if args.free_mb is not None and args.free_mb <= 0:
        raise FtbenchError("--free-mb must be > 0")
    # by default the device `ftbench run` would prepare for (the engine's own view)
    probed = device_for() if args.device is None else (
        cpu_device() if args.device == "cpu" else None)
    if probed is None or (args.device == "cuda" and probed.kind != "cuda"):
        here = probe_device()
        if here.kind == "cuda" and not args.gpu_name:
            probed = here
        else:
            name = args.gpu_name or ""
            no_bf16 = any(old in name for old in ("T4", "V100", "P100", "P40", "K80"))
            probed = DeviceInfo("cuda", args.gpu_name, None, None, "--device cuda (no GPU queried)",
                                bf16=not no_bf16)
    if args.free_mb is not None:
        probed = replace(probed, free_mb=float(args.free_mb), source="--free-mb")
    return probed


def plan_command(args: argparse.Namespace, overrides: Any) -> int:
    preset = load_preset(args.preset)
    device = device_from_args(args)
    prepared = resolve(preset, overrides, device)  # the runs `ftbench run` would train here
    specs = prepared.specs
    for model in dict.fromkeys(s.model for s in specs):
        resolve_model(model)  # a hub model without the hub: one line, before any planning
    quiet_libraries()
    plans = plan(prepared, _records(args.runs_dir)).plans or ()
    rows = [p.prediction for p in plans if p.prediction is not None]
    for p in plans:
        if p.problem is not None:
            print(f"ftbench: plan {p.method}: {p.problem}", file=sys.stderr)
    if not rows:
        return EXIT_USAGE
    if args.json:
        doc = plan_json(preset.name, rows)
        by_method = {p.method: p.spec for p in plans}
        for run in doc["runs"]:  # what would be trained, exactly
            run["spec"] = by_method[run["method"]].to_dict()
        print(json.dumps(doc, indent=2))
    else:
        from rich.console import Console  # Rich only for the table, not for --json

        reported = {r.method: float(r.metrics["peak_mb"]) for s in specs for r in s.references
                    if isinstance(r.metrics.get("peak_mb"), (int, float))}
        # Piped output gets room for every column (a terminal keeps its own width).
        console = Console() if sys.stdout.isatty() else Console(width=150)
        console.print(plan_table(preset.name, rows, reported or None))
        for line in dict.fromkeys(n for p in rows for n in p.notes):
            console.print(f"[dim]note: {line}[/]", highlight=False)
        if specs[0].substitutions:
            console.print("[dim]offline: " + "; ".join(specs[0].substitutions) + "[/]", highlight=False)
        elif specs[0].sizing:
            console.print(f"[dim]offline: {specs[0].sizing}[/]", highlight=False)
    return EXIT_FAILED if any(p.problem is not None for p in plans) else EXIT_OK


def _records(runs_dir: str | None) -> list[Any]:
    try:
        return list(load_runs(runs_dir).records)
    except Exception:  # calibration is optional: an unreadable folder only loses it
        return []
