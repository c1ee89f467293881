"""What the CPU levers give a whole preset run: before vs after, alternated, plus accuracy per seed.

Arms (each a fresh ``ftbench run --preset P --headless --json`` process):

* ``before``: precision fp32 and ``FTBENCH_LEVERS_OFF=eval_sort,prepared_cache``, i.e. what
  ftbench did before bf16 autocast, length-sorted evaluation and one tokenisation per preset;
* ``fp32``: precision fp32, the other levers on (the accuracy reference for ``after``);
* ``after``: the preset as it is (precision auto: bf16 on a CPU with native bf16).

Each repetition runs the chosen arms in turn, starting with a different one each time, and
reports per arm the training + evaluation seconds summed over the preset's runs (``train_s`` +
``eval_s`` of each record), the command's wall time and each method's primary metric per seed;
then the ratios of every arm to the first, measured within each repetition, and the median.

    .venv/bin/python benchmarks/cpu_speed.py --preset quickstart --seeds 3 --reps 1
    .venv/bin/python benchmarks/cpu_speed.py --preset imdb-strategies --offline --max-steps 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARMS: dict[str, tuple[str | None, str]] = {   # name -> (precision forced, levers off)
    "before": ("fp32", "eval_sort,prepared_cache"),
    "fp32": ("fp32", ""),
    "after": (None, ""),
}
TINY = ["--model", "tiny-bert", "--dataset", "synthetic-sentiment", "--train-size", "64",
        "--eval-size", "32", "--max-steps", "3"]


def preset_at_precision(name_or_path: str, precision: str, folder: Path) -> Path:
    """A copy of the preset in ``folder`` (same file name, so the same preset name) whose
    ``[train] precision`` is ``precision``."""
    sys.path.insert(0, str(ROOT))
    from ftbench.presets import find_preset

    source = find_preset(name_or_path)
    text = source.read_text()
    train = re.search(r"(?m)^\[train\][^\n]*\n", text)
    if train is None:
        text += f'\n[train]\nprecision = "{precision}"\n'
    else:
        end = re.search(r"(?m)^\[", text[train.end():])
        section = text[train.end(): train.end() + end.start() if end else len(text)]
        line = re.compile(r'(?m)^precision\s*=\s*"[^"]*"')
        section = line.sub(f'precision = "{precision}"', section) if line.search(section) \
            else f'precision = "{precision}"\n' + section
        text = text[:train.end()] + section + text[train.end() + (end.start() if end else len(text)):]
    out = folder / source.name
    out.write_text(text)
    return out


def run_arm(arm: str, preset: str, extra: list[str], folder: Path) -> dict[str, Any]:
    precision, off = ARMS[arm]
    target = str(preset_at_precision(preset, precision, folder / arm)) if precision else preset
    env = {**os.environ, "FTBENCH_LEVERS_OFF": off}
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "-m", "ftbench.cli", "run", "--preset", target, "--headless", "--json",
               "--runs-dir", runs, *extra]
        t, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, check=False)
        wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{arm} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    runs_ = json.loads(proc.stdout)["runs"]
    return {
        "arm": arm, "wall_s": round(wall, 2),
        # CPU seconds of the whole command (user + system): steadier than wall time on a shared
        # machine, though idle-spinning threads count in it
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2),
        "train_eval_s": round(sum((r["timing"]["train_s"] or 0) + (r["timing"]["eval_s"] or 0)
                                  for r in runs_), 2),
        "runs": [{"method": r["method"], "seed": r["spec"]["seed"],
                  "precision": r["environment"].get("precision"),
                  "train_s": r["timing"]["train_s"], "eval_s": r["timing"]["eval_s"],
                  "steady_samples_per_s": r["timing"].get("steady_samples_per_s"),
                  "metric": _primary(r), "tokens_reused": r["data_info"].get("tokens_reused"),
                  "eval_sampling": r["environment"].get("eval_sampling")} for r in runs_],
    }


def _primary(record: dict[str, Any]) -> float | None:
    metrics = record.get("metrics") or {}
    for key in ("accuracy", "exact_match"):
        if isinstance(metrics.get(key), (int, float)):
            return round(float(metrics[key]), 4)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quickstart")
    parser.add_argument("--arms", default="before,after", help="comma-separated: before, fp32, after")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--method", action="append", default=[])
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--offline", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny-bert, synthetic data, 3 steps (CI)")
    parser.add_argument("--out", help="write every repetition's rows here as JSON")
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown or not arms:
        parser.error(f"unknown arm {unknown[0] if unknown else ''!r} (known: {', '.join(ARMS)})")
    extra = (TINY if args.tiny else []) + (["--offline"] if args.offline else [])
    extra += ["--seeds", str(args.seeds)] if args.seeds else []
    extra += ["--max-steps", str(args.max_steps)] if args.max_steps else []
    for method in args.method:
        extra += ["--method", method]

    reps: list[dict[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = arms[rep % len(arms):] + arms[:rep % len(arms)]
            row: dict[str, dict[str, Any]] = {}
            for arm in order:
                (Path(tmp) / arm).mkdir(exist_ok=True)
                row[arm] = run_arm(arm, args.preset, extra, Path(tmp))
                print(f"rep {rep + 1} {arm}: train+eval {row[arm]['train_eval_s']:.1f} s, "
                      f"command {row[arm]['wall_s']:.1f} s ({row[arm]['cpu_s']:.1f} CPU s)", flush=True)
            reps.append(row)
    if args.out:
        Path(args.out).write_text(json.dumps(reps, indent=2))

    first = arms[0]
    summary: dict[str, Any] = {"preset": args.preset, "extra": extra, "reps": args.reps, "arms": {}}
    for arm in arms:
        per_method: dict[str, list[float | None]] = {}
        for r in (run for row in reps for run in row[arm]["runs"]):
            per_method.setdefault(r["method"], []).append(r["metric"])
        summary["arms"][arm] = {
            "median_train_eval_s": statistics.median(row[arm]["train_eval_s"] for row in reps),
            "median_wall_s": statistics.median(row[arm]["wall_s"] for row in reps),
            "median_cpu_s": statistics.median(row[arm]["cpu_s"] for row in reps),
            "precision": sorted({r["precision"] for row in reps for r in row[arm]["runs"]}),
            "metric_per_method": {m: _spread(v) for m, v in per_method.items()},
        }
        if arm != first:
            summary["arms"][arm]["train_eval_ratio_to_" + first] = round(statistics.median(
                row[arm]["train_eval_s"] / row[first]["train_eval_s"] for row in reps), 3)
            summary["arms"][arm]["wall_ratio_to_" + first] = round(statistics.median(
                row[arm]["wall_s"] / row[first]["wall_s"] for row in reps), 3)
            summary["arms"][arm]["cpu_ratio_to_" + first] = round(statistics.median(
                row[arm]["cpu_s"] / row[first]["cpu_s"] for row in reps), 3)
    print(json.dumps(summary, indent=2))


def _spread(values: list[float | None]) -> dict[str, Any]:
    got = [v for v in values if v is not None]
    if not got:
        return {"values": values}
    return {"values": values, "mean": round(statistics.fmean(got), 4),
            "min": min(got), "max": max(got)}


if __name__ == "__main__":
    main()
