"""GPU efficiency: MFU, samples/s and peak memory of base-size models, through `ftbench run`.

Configurations (random-init base-size shapes, since the hub may be unreachable; see
ftbench/models.py): BERT-base full fine-tuning at sequence length 128, and LoRA / QLoRA on a
RoBERTa-base shape. Real IMDb reviews (bundled) at max length 128 fill nearly every sequence.
Each configuration is one `ftbench run` in a fresh process with ftbench's GPU defaults (bf16
where supported, SDPA attention, fused AdamW, dynamic padding with length grouping); pass
--compile to add torch.compile. MFU comes from the run record (ftbench/engine/flops.py).

    .venv/bin/python benchmarks/gpu.py --steps 200 [--compile]

On a CPU it still runs (use --steps 2) but records no MFU.
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
title = "gpu benchmark"
description = "benchmarks/gpu.py"
reproduces = "benchmark"
model = "{model}"
task = "classification"

[data]
name = "imdb"
source = "bundled"
train_size = {train_size}
eval_size = 64

[train]
batch_size = {batch}
max_length = 128
learning_rate = {lr}
logging_steps = 20

[[methods]]
name = "{method}"
"""

CONFIGS = [
    ("bert-base-random", "full", 2e-5),
    ("roberta-base-random", "lora", 5e-4),
    ("roberta-base-random", "qlora", 5e-4),
]


def one(model: str, method: str, lr: float, batch: int, steps: int, compile_: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        preset = Path(tmp) / "gpu.toml"
        preset.write_text(PRESET.format(model=model, method=method, lr=lr, batch=batch,
                                        train_size=max(256, batch * steps)))
        cmd = [sys.executable, "-m", "ftbench.cli", "run", "--preset", str(preset), "--headless",
               "--json", "--max-steps", str(steps), "--runs-dir", str(Path(tmp) / "runs")]
        if compile_:
            cmd.append("--compile")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        return {"model": model, "method": method, "error": proc.stderr.strip()[-400:]}
    r = json.loads(proc.stdout)["runs"][0]
    t, m, env = r["timing"], r["memory"], r["environment"]
    return {
        "model": model, "method": method, "batch": batch, "steps": t["steps"],
        "device": env.get("device_name") or "cpu", "precision": env.get("precision"),
        "samples_per_s": t["samples_per_s"], "tokens_per_s": t["tokens_per_s"],
        "achieved_tflops": t.get("achieved_tflops"), "mfu": t.get("mfu"),
        "peak_tflops": env.get("peak_tflops"),
        "torch_peak_allocated_mb": m.get("torch_peak_allocated_mb"),
        "nvml_peak_used_mb": m.get("nvml_peak_used_mb"),
        "trainable": r["params"]["trainable"], "status": r["status"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--only", choices=["full", "lora", "qlora"], action="append")
    args = parser.parse_args()
    rows = []
    for model, method, lr in CONFIGS:
        if args.only and method not in args.only:
            continue
        row = one(model, method, lr, args.batch, args.steps, args.compile)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| model | method | device | precision | samples/s | TFLOP/s | MFU | torch peak MB | NVML peak MB |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['method']} | error: {r['error']} |")
            continue
        mfu = f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "-"
        print(f"| {r['model']} | {r['method']} | {r['device']} | {r['precision']} | {r['samples_per_s']} "
              f"| {r['achieved_tflops']} | {mfu} | {r['torch_peak_allocated_mb']} | {r['nvml_peak_used_mb']} |")


if __name__ == "__main__":
    main()
