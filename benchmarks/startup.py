"""Start-up latency: `ftbench --help`, `ftbench presets`, `ftbench runs`, and the TUI's first paint.

Each command runs in a fresh process through the installed console script; the figure is the
median wall time over ``--reps`` runs (after one warm-up run that fills the OS file cache).
The TUI figure is the time from process start to the first screen being painted, measured by
the app itself in headless mode (``ftbench.tui`` prints it when FTBENCH_FIRST_PAINT=1).
Targets: < 0.3 s for the CLI listings, < 1 s to first paint.

    .venv/bin/python benchmarks/startup.py --reps 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ftbench_cmd() -> list[str]:
    script = Path(sys.executable).parent / "ftbench"
    return [str(script)] if script.exists() else [shutil.which("ftbench") or "ftbench"]


def median_wall(cmd: list[str], reps: int, env: dict[str, str]) -> float:
    subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT)  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-1000:]}")
    return statistics.median(times)


def first_paint(reps: int, env: dict[str, str]) -> float | None:
    code = ("import time, os; t0 = float(os.environ['FTBENCH_T0']);\n"
            "from ftbench.tui.app import measure_first_paint\n"
            "print(measure_first_paint(t0))")
    times = []
    for i in range(reps + 1):
        env = dict(env, FTBENCH_T0=repr(time.time()))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, cwd=ROOT)
        if proc.returncode != 0:
            print(f"TUI first paint not measurable: {proc.stderr.strip().splitlines()[-1:]}")
            return None
        if i:  # the first run warms the file cache
            times.append(float(proc.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    runs = tempfile.mkdtemp()
    fixtures = ROOT / "tests" / "fixtures" / "runs"
    for path in fixtures.glob("*.json"):
        shutil.copy(path, runs)
    env = dict(os.environ, FTBENCH_RUNS_DIR=runs, COLUMNS="120")
    base = ftbench_cmd()
    results = {
        "ftbench --help": median_wall(base + ["--help"], args.reps, env),
        "ftbench presets": median_wall(base + ["presets"], args.reps, env),
        f"ftbench runs ({len(list(fixtures.glob('*.json')))} runs)": median_wall(base + ["runs"], args.reps, env),
        "python -c pass (interpreter alone)": median_wall([sys.executable, "-c", "pass"], args.reps, env),
    }
    paint = first_paint(args.reps, env)
    if paint is not None:
        results["TUI first paint"] = paint
    for name, seconds in results.items():
        print(f"{name:45s} {seconds * 1000:7.0f} ms")
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))


if __name__ == "__main__":
    main()
