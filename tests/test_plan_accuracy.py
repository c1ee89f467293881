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


def test_cpu_predictions_are_within_20_percent_of_the_measured_rss_growth() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--models", "tiny-bert", "--methods", "full,lora,head-only",
         "--batch", "8", "--seq", "128", "--steps", "2", "--malloc", "fixed", "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    doc = json.loads(proc.stdout)
    rows = doc["rows"]
    assert [r["method"] for r in rows] == ["full", "lora", "head-only"]
    for r in rows:
        assert r["trainable"] == r["predicted_trainable"], r
        assert r["measured_fixed_mb"] > 0 and r["predicted_mb"] > 0, r
        assert abs(r["error_fixed"]) <= doc["tolerance"] == 0.20, r
    # The script's own verdict agrees with the rows.
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
