"""benchmarks/plan_accuracy.py in CI, with tiny settings, so the script cannot rot and the
CPU accuracy criterion (±20 % of the RSS growth, tiny models) is checked on every run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "plan_accuracy.py"


def _plan_accuracy(methods: str, *extra: str) -> tuple[dict, subprocess.CompletedProcess]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "tiny-bert", "--methods", methods,
         "--batch", "8", "--seq", "128", "--steps", "2", "--malloc", "fixed", "--json", *extra],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    return json.loads(proc.stdout), proc


def test_cpu_predictions_are_within_20_percent_of_the_measured_rss_growth() -> None:
    doc, proc = _plan_accuracy("full,lora")
    rows = doc["rows"]
    assert [r["method"] for r in rows] == ["full", "lora"]
    for r in rows:
        assert r["trainable"] == r["predicted_trainable"], r
        assert r["measured_fixed_mb"] > 0 and r["predicted_mb"] > 0, r
        assert abs(r["error_fixed"]) <= doc["tolerance"] == 0.20, r
    # The script's own verdict agrees with the rows.
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_head_only_is_predicted_within_20_percent() -> None:
    """Head-only on tiny-bert grows by ~38 MB. Before the plan counted the forward working set
    it said ~30.5 MB (-19.7 to -20.8 % from run to run, checked at 25 %); with it, ~35 MB
    (-7.7 %): the training forward's attention (dropout on: the math path, its seq x seq
    scores alive together) is what a frozen backbone holds at once."""
    doc, proc = _plan_accuracy("head-only")
    [r] = doc["rows"]
    assert r["trainable"] == r["predicted_trainable"], r
    assert abs(r["error_fixed"]) <= doc["tolerance"] == 0.20, r
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_gpu_mode_refuses_cleanly_without_cuda_or_runs_on_it() -> None:
    """--gpu on a machine without CUDA must say so in one line, not crash mid-table."""
    import torch

    if torch.cuda.is_available():
        return  # the GPU table itself is the check there
    proc = subprocess.run([sys.executable, str(SCRIPT), "--gpu"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1:] == [
        "plan_accuracy: --gpu needs a CUDA GPU (torch.cuda.is_available() is False)"]
