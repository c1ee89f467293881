"""How close is `ftbench plan` to what runs measure? One table: predicted vs measured peak.

Every configuration is a real ftbench run (`ftbench.engine.runner.run`) of a few steps on a
local file of long texts, so every sequence fills ``--seq`` tokens (the plan predicts for full
sequences). The prediction compared is the one the run stored in its record
(``record.prediction``), made before the model loaded.

CPU (default): each configuration in a fresh process; measured = peak RSS minus the RSS just
before the model is loaded (the kernel's high-water mark, reset at that moment through
/proc/self/clear_refs). Two allocator settings are measured: glibc's defaults, whose dynamic
mmap threshold keeps freed activation memory in the heap (so RSS overstates what the run
holds), and ``MALLOC_MMAP_THRESHOLD_=65536``, with which large tensors go back to the OS when
freed and RSS follows live memory.

    .venv/bin/python benchmarks/plan_accuracy.py                 # tiny-bert, minilm-l6 x 5 methods
    .venv/bin/python benchmarks/plan_accuracy.py --gpu           # BERT-base full/lora/qlora, bs 16/64

GPU (--gpu): one process, runs in turn; measured = ``torch.cuda.max_memory_allocated`` (the
run's ``torch_peak_allocated_mb``, reset at the start of training), predicted = the record's
allocator peak (``prediction.memory.peak_mb``). The model is a local folder with the exact
``bert-base-random`` config (BertConfig defaults, 30,522-token vocabulary), random init,
written by this script so no download is needed; bf16 autocast, seq 128.

Exit status 0 when every row is within the tolerance (CPU ±20 % on the fixed-threshold column,
GPU ±10 %), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CPU_MODELS = ("tiny-bert", "minilm-l6")
CPU_METHODS = ("full", "lora", "head-only", "bitfit", "ia3")
GPU_CONFIGS = (("full", 16), ("lora", 16), ("qlora", 16), ("full", 64), ("lora", 64), ("qlora", 64))
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}

_WORDS = ("the film was long and the story kept moving while the actors gave good and bad "
          "performances in scenes that felt slow then fast with music over every ending").split()


def write_texts(folder: Path, rows: int = 256, words: int = 400) -> Path:
    """A CSV of long texts with two labels: every example is truncated at max_length."""
    import csv
    import random

    rng = random.Random(0)
    path = folder / "long.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            writer.writerow([" ".join(rng.choice(_WORDS) for _ in range(words)), ["neg", "pos"][i % 2]])
    return path


def bert_base_folder(folder: Path) -> Path:
    """bert-base-random's config with a generated vocabulary of the same size, random init."""
    import torch
    from transformers import AutoModel, BertTokenizer

    from ftbench.models import _tiny_config, _tiny_vocab

    out = folder / "bert-base-shape"
    if (out / "config.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    vocab = _tiny_vocab()
    vocab += [f"[unused{i}]" for i in range(30522 - len(vocab))]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(out / "vocab.txt"), do_lower_case=True).save_pretrained(out)
    torch.manual_seed(0)
    AutoModel.from_config(_tiny_config("bert-base-random", len(vocab))).save_pretrained(out)
    return out


def make_spec(model: str, method: str, batch: int, seq: int, steps: int, data: Path,
              precision: str) -> Any:
    from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

    return RunSpec(
        preset="plan-accuracy", model=model, task="classification",
        data=DataSpec(name="file", path=str(data), train_size=max(2, batch * steps), eval_size=8),
        train=TrainParams(max_steps=steps, batch_size=batch, eval_batch_size=8, max_length=seq,
                          logging_steps=steps, learning_rate=1e-4, precision=precision),
        method=MethodSpec(method))


# --- CPU: one configuration per process ----------------------------------------------------

def _rss_mb() -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
                  if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_child(model: str, method: str, batch: int, seq: int, steps: int, data: str) -> dict[str, Any]:
    import gc

    import peft  # noqa: F401  (imported before the baseline, like the run does before loading)
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from ftbench.engine import build, runner
    from ftbench.plan.record import prediction_for_record

    baseline: dict[str, float] = {}
    build_model = build.build_model

    def measured_build(*args: Any, **kwargs: Any) -> Any:
        gc.collect()
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to now
        baseline["rss"] = _rss_mb()[0]
        return build_model(*args, **kwargs)

    build.build_model = measured_build
    spec = make_spec(model, method, batch, seq, steps, Path(data), "fp32")
    with tempfile.TemporaryDirectory() as runs:
        finished = runner.run(spec, runs_dir=runs, predict=prediction_for_record)
    peak = _rss_mb()[1]
    record = finished.record
    prediction = record.prediction or {}
    return {"status": record.status, "error": record.error,
            "measured_mb": round(peak - baseline.get("rss", float("nan")), 1),
            "predicted_mb": (prediction.get("memory") or {}).get("peak_mb"),
            "trainable": record.params.get("trainable"),
            "predicted_trainable": (prediction.get("params") or {}).get("trainable")}


def run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}): {' '.join(args)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_table(models: list[str], methods: list[str], batch: int, seq: int, steps: int,
              malloc: str) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_texts(Path(tmp))
        for model in models:
            for method in methods:
                row: dict[str, Any] = {"model": model, "method": method, "batch": batch, "seq": seq}
                for label, env in (("default", {}), ("fixed", FIXED_MALLOC)):
                    if malloc not in ("both", label):
                        continue
                    out = run_child([model, method, str(batch), str(seq), str(steps), str(data)], env)
                    if out["status"] != "completed":
                        raise SystemExit(f"{model} {method}: run {out['status']}: {out['error']}")
                    row.update(predicted_mb=out["predicted_mb"], trainable=out["trainable"],
                               predicted_trainable=out["predicted_trainable"])
                    row[f"measured_{label}_mb"] = out["measured_mb"]
                    row[f"error_{label}"] = _error(out["predicted_mb"], out["measured_mb"])
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


# --- GPU: every configuration in one process -----------------------------------------------

def gpu_table(seq: int, steps: int) -> list[dict[str, Any]]:
    import gc

    import torch

    from ftbench.engine.runner import run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = write_texts(Path(tmp))
        model = str(bert_base_folder(Path(tmp)))
        for method, batch in GPU_CONFIGS:
            spec = make_spec(model, method, batch, seq, steps, data, "bf16")
            with tempfile.TemporaryDirectory() as runs:
                t = time.perf_counter()
                record = run(spec, runs_dir=runs).record
            if record.status != "completed":
                raise SystemExit(f"{method} bs {batch}: run {record.status}: {record.error}")
            predicted = ((record.prediction or {}).get("memory") or {}).get("peak_mb")
            measured = record.memory.get("torch_peak_allocated_mb")
            rows.append({"model": "bert-base (random init)", "method": method, "batch": batch,
                         "seq": seq, "predicted_mb": predicted, "measured_mb": measured,
                         "error": _error(predicted, measured),
                         "trainable": record.params.get("trainable"),
                         "predicted_trainable": ((record.prediction or {}).get("params") or {}).get("trainable"),
                         "wall_s": round(time.perf_counter() - t, 1)})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            gc.collect()
            torch.cuda.empty_cache()
    return rows


def _error(predicted: float | None, measured: float | None) -> float | None:
    if predicted is None or not measured:
        return None
    return round((predicted - measured) / measured, 4)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def print_table(rows: list[dict[str, Any]], gpu: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ftbench plan: predicted vs measured peak memory (MB)")
    cols = ["model", "method", "batch x seq", "predicted"]
    cols += ["max_memory_allocated", "error"] if gpu else [
        "RSS growth (glibc default)", "error", "RSS growth (mmap threshold 64 KiB)", "error"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("model", "method") else "right")
    for r in rows:
        cells = [r["model"], r["method"], f"{r['batch']} x {r['seq']}", _mb(r["predicted_mb"])]
        if gpu:
            cells += [_mb(r["measured_mb"]), _pct(r["error"])]
        else:
            for label in ("default", "fixed"):
                m = r.get(f"measured_{label}_mb")
                cells += [_mb(m), _pct(r.get(f"error_{label}"))]
        table.add_row(*cells)
    Console(width=160).print(table)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        model, method, batch, seq, steps, data = sys.argv[2:8]
        print(json.dumps(cpu_child(model, method, int(batch), int(seq), int(steps), data)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="BERT-base full / LoRA / QLoRA on CUDA")
    parser.add_argument("--models", default=",".join(CPU_MODELS))
    parser.add_argument("--methods", default=",".join(CPU_METHODS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--malloc", choices=("both", "default", "fixed"), default="both")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="allowed |error| (default 0.20 on CPU, 0.10 on GPU)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON, not a table")
    args = parser.parse_args()
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            print("plan_accuracy: --gpu needs a CUDA GPU (torch.cuda.is_available() is False)",
                  file=sys.stderr)
            return 2
        rows = gpu_table(args.seq, args.steps)
        errors = [r["error"] for r in rows]
    else:
        rows = cpu_table(args.models.split(","), args.methods.split(","), args.batch, args.seq,
                         args.steps, args.malloc)
        key = "error_fixed" if args.malloc in ("both", "fixed") else "error_default"
        errors = [r[key] for r in rows]
    tolerance = args.tolerance if args.tolerance is not None else (0.10 if args.gpu else 0.20)
    if args.json:
        print(json.dumps({"rows": rows, "tolerance": tolerance}, indent=2))
    else:
        print_table(rows, args.gpu)
    exact = all(r["trainable"] == r["predicted_trainable"] for r in rows)
    ok = exact and all(e is not None and abs(e) <= tolerance for e in errors)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
