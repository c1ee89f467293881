"""How training time and memory grow with sequence length and batch size.

Each configuration is one real `ftbench run` in a fresh process (so the process peak RSS is
that configuration's own): MiniLM-L6 on real IMDb reviews (long enough to fill 512 tokens:
most reviews are truncated at 128 and 256), a few optimizer steps, one tiny evaluation.
Reported per configuration: time per step, samples/s, real tokens/s, mean real tokens per
sample, peak memory (torch allocated on a GPU, process RSS on a CPU).

    .venv/bin/python benchmarks/scaling.py --steps 4 --lengths 128 256 512 --batches 8 16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRESET = """
title = "scaling"
description = "benchmarks/scaling.py"
reproduces = "benchmark"
model = "{model}"
task = "classification"

[data]
name = "{dataset}"
train_size = 2000
eval_size = 16

[train]
batch_size = {batch}
max_length = {length}
learning_rate = 5e-5
logging_steps = 1
epochs = 1

[[methods]]
name = "{method}"
"""


def one(model: str, method: str, length: int, batch: int, steps: int, dataset: str = "imdb") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        preset = Path(tmp) / "scaling.toml"
        preset.write_text(PRESET.format(model=model, method=method, length=length, batch=batch,
                                        dataset=dataset))
        proc = subprocess.run([sys.executable, "-m", "ftbench.cli", "run", "--preset", str(preset),
                               "--headless", "--json", "--max-steps", str(steps), "--offline",
                               "--runs-dir", str(Path(tmp) / "runs")],
                              capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"length": length, "batch": batch, "method": method, "error": proc.stderr[-300:]}
    r = json.loads(proc.stdout)["runs"][0]
    t, m = r["timing"], r["memory"]
    gpu = m.get("torch_peak_allocated_mb")
    return {
        "method": method, "length": length, "batch": batch,
        "s_per_step": round(t["train_s"] / t["steps"], 3),
        "samples_per_s": t["samples_per_s"], "tokens_per_s": t["tokens_per_s"],
        "tokens_per_sample": round(t["train_tokens"] / t["train_samples"], 1),
        "peak_mb": gpu if gpu else m.get("process_peak_rss_mb"),
        "peak_kind": "torch allocated" if gpu else "process RSS",
        "device": r["environment"].get("device_name") or "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--methods", nargs="+", default=["full", "lora"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[128, 256, 512])
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 16])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--dataset", default="imdb", help="imdb (bundled reviews) or synthetic-sentiment (CI)")
    args = parser.parse_args()
    print("| method | max length | batch | real tokens/sample | s/step | samples/s | tokens/s | peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for method in args.methods:
        for length in args.lengths:
            for batch in args.batches:
                row = one(args.model, method, length, batch, args.steps, args.dataset)
                rows.append(row)
                if "error" in row:
                    print(f"| {method} | {length} | {batch} | error: {row['error']} |", flush=True)
                    continue
                print(f"| {method} | {length} | {batch} | {row['tokens_per_sample']} | {row['s_per_step']} "
                      f"| {row['samples_per_s']} | {row['tokens_per_s']} "
                      f"| {row['peak_mb']:,.0f} ({row['peak_kind']}) |",
                      flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
