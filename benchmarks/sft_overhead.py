"""Is ftbench's SFT path as fast as a hand-written one? Training tokens/s, alternated.

For each repetition it runs, in fresh processes and alternating which goes first:

* ``ftbench run --preset sft-quickstart --method lora --max-steps N --eval-size E --headless
  --json``: ftbench's whole-run ``timing.tokens_per_s`` (real, non-padding tokens over
  ``train_s``, which excludes evaluation);
* ``python benchmarks/sft_trainer.py --max-steps N``: the same model, examples, template,
  response-only labels, LoRA, precision, optimizer and batch in a plain Trainer + peft script,
  counting real tokens per training step over ``trainer.train()``'s wall time;

and reports each side's tokens/s and the median ratio ftbench / plain (target >= 1.0).
The machine's load average is printed with every repetition: on a shared machine, compare
only repetitions taken under similar load.

    .venv/bin/python benchmarks/sft_overhead.py --max-steps 40 --reps 3
    .venv/bin/python benchmarks/sft_overhead.py --tiny --max-steps 3 --reps 1   # CI
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

TINY_PRESET = """
title = "SFT overhead, tiny"
description = "tiny-llama, plain template: the CI run of benchmarks/sft_overhead.py"
reproduces = "none"
model = "tiny-llama"
task = "causal-lm"
seed = 42
[data]
name = "math-problems"
train_size = 32
eval_size = 6
options = { template = "plain", max_ops = 1, max_new_tokens = 4, samples = 1, general_text = "none" }
[train]
max_steps = 3
batch_size = 4
max_length = 256
learning_rate = 1e-3
precision = "fp32"
logging_steps = 1
[[methods]]
name = "lora"
args = { r = 4, alpha = 32, dropout = 0.05, target_modules = "all-linear" }
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=os.environ.copy())
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def run_ftbench(steps: int, eval_size: int, preset: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as runs:
        _, out = timed([sys.executable, "-m", "ftbench.cli", "run", "--preset", preset,
                        "--method", "lora", "--max-steps", str(steps), "--eval-size",
                        str(eval_size), "--headless", "--json", "--runs-dir", runs])
    timing = json.loads(out)["runs"][0]["timing"]
    return {"train_s": float(timing["train_s"]), "tokens": float(timing["train_tokens"]),
            "tokens_per_s": float(timing["tokens_per_s"])}


def run_plain(steps: int, tiny: bool) -> dict[str, float]:
    _, out = timed([sys.executable, str(ROOT / "benchmarks" / "sft_trainer.py"),
                    "--max-steps", str(steps)] + (["--tiny"] if tiny else []))
    result = json.loads(out.strip().splitlines()[-1])
    return {k: float(result[k]) for k in ("train_s", "tokens", "tokens_per_s")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--eval-size", type=int, default=10,
                        help="ftbench's held-out problems (its evaluation is not timed; smaller "
                             "is quicker)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="tiny-llama (CI)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        preset = "sft-quickstart"
        if args.tiny:
            preset = str(Path(tmp) / "sft-tiny.toml")
            Path(preset).write_text(TINY_PRESET)
        rows = []
        for rep in range(args.reps):
            load = os.getloadavg()[0]
            first = ("ftbench", "plain") if rep % 2 == 0 else ("plain", "ftbench")
            result = {}
            for side in first:
                result[side] = run_ftbench(args.max_steps, args.eval_size, preset) \
                    if side == "ftbench" else run_plain(args.max_steps, args.tiny)
            ratio = result["ftbench"]["tokens_per_s"] / result["plain"]["tokens_per_s"]
            rows.append({"rep": rep + 1, "first": first[0], "load_avg_1m": round(load, 2),
                         **{f"{side}_{k}": v for side in result for k, v in result[side].items()},
                         "ratio": round(ratio, 3)})
            print(f"rep {rep + 1} ({first[0]} first, load {load:.1f}): tokens/s ftbench "
                  f"{result['ftbench']['tokens_per_s']:.0f} plain "
                  f"{result['plain']['tokens_per_s']:.0f} (x{ratio:.3f})", flush=True)
    print(json.dumps({
        "max_steps": args.max_steps, "reps": args.reps, "rows": rows,
        "median_tokens_per_s": {side: statistics.median(r[f"{side}_tokens_per_s"] for r in rows)
                                for side in ("ftbench", "plain")},
        "median_ratio": round(statistics.median(r["ratio"] for r in rows), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
