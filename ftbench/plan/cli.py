"""`ftbench plan --preset P [run's overrides]`: a prediction per method, as a table or JSON.

Exit codes: 0 every method planned, 1 some could not be (each says why on stderr), 2 bad input
or nothing could be planned (one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ftbench.errors import FtbenchError
from ftbench.terms import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def device_from_args(args: argparse.Namespace) -> Any:
    from ftbench.plan.device import DeviceInfo, cpu_device, probe_device

    if args.gpu_name and args.device != "cuda":
        raise FtbenchError("--gpu-name needs --device cuda")
    if args.free_mb is not None and args.free_mb <= 0:
        raise FtbenchError("--free-mb must be > 0")
    probed = probe_device() if args.device is None else (
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
        from dataclasses import replace

        probed = replace(probed, free_mb=float(args.free_mb), source="--free-mb")
    return probed


def plan_command(args: argparse.Namespace, overrides: Any) -> int:
    from ftbench.presets import expand, load_preset

    preset = load_preset(args.preset)
    specs = expand(preset, overrides)
    device = device_from_args(args)
    from ftbench.models import resolve_model

    for model in dict.fromkeys(s.model for s in specs):
        resolve_model(model)  # a hub model without the hub: one line, before any planning
    from ftbench.quiet import quiet_libraries

    quiet_libraries()
    records = _records(args.runs_dir)
    first_per_method = list({s.method.name: s for s in reversed(specs)}.values())[::-1]
    rows = []
    failures = []
    for spec in first_per_method:
        try:
            from ftbench.plan.estimate import predict

            rows.append(predict(spec, device, records=records))
        except FtbenchError as exc:
            failures.append(f"{spec.method.name}: {exc}")
        except Exception as exc:  # an architecture the planner cannot trace: say so, go on
            text = str(exc).strip().splitlines()
            failures.append(f"{spec.method.name}: cannot be predicted ({type(exc).__name__}: "
                            f"{text[0] if text else ''})")
    for line in failures:
        print(f"ftbench: plan {line}", file=sys.stderr)
    if not rows:
        return EXIT_USAGE
    if args.json:
        from ftbench.plan.render import plan_json

        print(json.dumps(plan_json(preset.name, rows), indent=2))
    else:
        from rich.console import Console

        from ftbench.plan.render import plan_table

        reported = {r.method: float(r.metrics["peak_mb"]) for s in specs for r in s.references
                    if isinstance(r.metrics.get("peak_mb"), (int, float))}
        # Piped output gets room for every column (a terminal keeps its own width).
        console = Console() if sys.stdout.isatty() else Console(width=150)
        console.print(plan_table(preset.name, rows, reported or None))
        for line in dict.fromkeys(n for p in rows for n in p.notes):
            console.print(f"[dim]note: {line}[/]", highlight=False)
        if specs[0].substitutions:
            console.print("[dim]offline: " + "; ".join(specs[0].substitutions) + "[/]", highlight=False)
    return EXIT_FAILED if failures else EXIT_OK


def _records(runs_dir: str | None) -> list[Any]:
    from ftbench.results.store import load_runs

    try:
        return list(load_runs(runs_dir).records)
    except Exception:  # calibration is optional: an unreadable folder only loses it
        return []
