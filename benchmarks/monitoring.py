"""What does watching cost? The same run in the TUI and headless, alternated.

For each repetition, in fresh processes and alternating which goes first:

* headless: ``ftbench run --preset quickstart --method M --max-steps N --headless --json``
* TUI: the same runs (the CLI's own `expand`) started by ``FtbenchApp(start=...)``, the path
  ``ftbench run`` takes on a terminal, driven headless by Textual (live screen, loss, eval
  and memory panels redrawing as in a real terminal) until the queue is done.

Reported: the median ratio TUI / headless of the recorded training time (``train_s``, which
excludes evaluation). Target: <= 1.02.

    .venv/bin/python benchmarks/monitoring.py --method lora --max-steps 30 --reps 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TUI_SCRIPT = """
import asyncio, json, sys
from ftbench.prepare import Prepared
from ftbench.presets import Overrides, expand, load_preset
from ftbench.results.store import load_runs
from ftbench.tui.app import FtbenchApp
from ftbench.tui.widgets.memory_panel import Machine

method, steps, runs, tiny = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
preset = load_preset("quickstart")
extra = dict(model="tiny-bert", dataset="synthetic-sentiment", train_size=64, eval_size=16) if tiny else {}
specs = expand(preset, Overrides(methods=(method,), max_steps=steps, **extra))

async def main():
    app = FtbenchApp(runs, start=Prepared.given(preset.name, specs))
    async with app.run_test(size=(120, 40)) as pilot:
        while app.queue is None or app.training:
            await pilot.pause(0.2)
    records = load_runs(runs).records
    print(json.dumps({"train_s": records[0].timing["train_s"], "status": records[0].status}))

asyncio.run(main())
"""


TINY: list[str] = []   # --tiny: tiny-bert on synthetic reviews (CI smoke run)


def run_headless(method: str, steps: int) -> float:
    tiny = ["--model", "tiny-bert", "--dataset", "synthetic-sentiment", "--train-size", "64",
            "--eval-size", "16"] if TINY else []
    with tempfile.TemporaryDirectory() as runs:
        proc = subprocess.run([sys.executable, "-m", "ftbench.cli", "run", "--preset", "quickstart",
                               "--method", method, "--max-steps", str(steps), "--headless",
                               "--json", "--runs-dir", runs] + tiny,
                              capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"headless run failed: {proc.stderr[-2000:]}")
    return float(json.loads(proc.stdout)["runs"][0]["timing"]["train_s"])


def run_tui(method: str, steps: int) -> float:
    with tempfile.TemporaryDirectory() as runs:
        proc = subprocess.run([sys.executable, "-c", TUI_SCRIPT, method, str(steps), runs,
                               "1" if TINY else "0"],
                              capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"TUI run failed: {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] != "completed":
        raise SystemExit(f"TUI run ended {result['status']}")
    return float(result["train_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="lora", choices=["full", "lora", "head-only"])
    parser.add_argument("--max-steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="tiny-bert, synthetic data (CI)")
    args = parser.parse_args()
    if args.tiny:
        TINY.append("--tiny")
    rows = []
    for rep in range(args.reps):
        order = [run_headless, run_tui] if rep % 2 == 0 else [run_tui, run_headless]
        got = {fn.__name__: fn(args.method, args.max_steps) for fn in order}
        rows.append((got["run_tui"], got["run_headless"]))
        print(f"rep {rep + 1}: train TUI {rows[-1][0]:.2f}s headless {rows[-1][1]:.2f}s "
              f"(x{rows[-1][0] / rows[-1][1]:.3f})", flush=True)
    print(json.dumps({
        "method": args.method, "max_steps": args.max_steps, "reps": args.reps,
        "median_train_s": {"tui": statistics.median(r[0] for r in rows),
                           "headless": statistics.median(r[1] for r in rows)},
        "train_ratio": round(statistics.median(r[0] / r[1] for r in rows), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
