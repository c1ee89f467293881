"""Does ftbench distort what it measures? ftbench vs a hand-written Trainer script, alternated.

For each repetition it runs, in fresh processes and alternating which goes first:

* ``ftbench run --preset quickstart --method M --max-steps N --headless --json``
* ``python benchmarks/plain_trainer.py --method M --max-steps N`` (same model, data, settings)

and reports the median ratio ftbench / plain of (a) the training phase (ftbench's recorded
``train_s``, which excludes evaluation, vs the plain script's ``trainer.train()`` wall time)
and (b) the whole command's wall time. Target: both <= 1.03.

Both train at the same precision: ``--precision`` (default auto, resolved by ftbench's own rule
for this machine: bf16 on a CPU with native bf16) is written into a copy of the preset for
ftbench and passed to the plain script.

    .venv/bin/python benchmarks/overhead.py --method lora --max-steps 20 --reps 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # cpu_speed.preset_at_precision


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


TINY: list[str] = []   # --tiny: tiny-bert on synthetic reviews in both (CI smoke run)
TINY_FTBENCH = ["--model", "tiny-bert", "--dataset", "synthetic-sentiment", "--train-size", "64",
                "--eval-size", "16"]


PRECISION: list[str] = ["fp32"]   # what both sides train in (main() resolves --precision)


def run_ftbench(method: str, steps: int) -> tuple[float, float]:
    from cpu_speed import preset_at_precision

    with tempfile.TemporaryDirectory() as runs:
        preset = preset_at_precision("quickstart", PRECISION[0], Path(runs))
        wall, out = timed([sys.executable, "-m", "ftbench.cli", "run", "--preset", str(preset),
                           "--method", method, "--max-steps", str(steps), "--headless", "--json",
                           "--runs-dir", runs] + (TINY_FTBENCH if TINY else []))
    record = json.loads(out)["runs"][0]
    if record["environment"]["precision"] != PRECISION[0]:
        raise SystemExit(f"ftbench ran {record['environment']['precision']}, not {PRECISION[0]}")
    return float(record["timing"]["train_s"]), wall


def run_plain(method: str, steps: int) -> tuple[float, float]:
    wall, out = timed([sys.executable, str(ROOT / "benchmarks" / "plain_trainer.py"),
                       "--method", method, "--max-steps", str(steps), "--precision", PRECISION[0]]
                      + TINY)
    return float(json.loads(out.strip().splitlines()[-1])["train_s"]), wall


def resolve_precision(asked: str) -> str:
    """--precision auto: what ftbench's rule picks on this machine's CPU."""
    if asked != "auto":
        return asked
    import torch

    from ftbench.engine.precision import resolve

    return resolve("auto", "cpu", torch).precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="lora", choices=["full", "lora"])
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="tiny-bert, synthetic data (CI)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto")
    args = parser.parse_args()
    if args.tiny:
        TINY.append("--tiny")
    PRECISION[0] = resolve_precision(args.precision)

    rows = []
    for rep in range(args.reps):
        order = [run_ftbench, run_plain] if rep % 2 == 0 else [run_plain, run_ftbench]
        result = {}
        for fn in order:
            result[fn.__name__] = fn(args.method, args.max_steps)
        (ft_train, ft_wall), (pl_train, pl_wall) = result["run_ftbench"], result["run_plain"]
        rows.append((ft_train, pl_train, ft_wall, pl_wall))
        print(f"rep {rep + 1}: train ftbench {ft_train:.2f}s plain {pl_train:.2f}s "
              f"(x{ft_train / pl_train:.3f}) | command ftbench {ft_wall:.2f}s plain {pl_wall:.2f}s "
              f"(x{ft_wall / pl_wall:.3f})", flush=True)
    train_ratio = statistics.median(r[0] / r[1] for r in rows)
    wall_ratio = statistics.median(r[2] / r[3] for r in rows)
    print(json.dumps({
        "method": args.method, "max_steps": args.max_steps, "reps": args.reps,
        "precision": PRECISION[0],
        "median_train_s": {"ftbench": statistics.median(r[0] for r in rows),
                           "plain": statistics.median(r[1] for r in rows)},
        "median_command_s": {"ftbench": statistics.median(r[2] for r in rows),
                             "plain": statistics.median(r[3] for r in rows)},
        "train_ratio": round(train_ratio, 3), "command_ratio": round(wall_ratio, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
