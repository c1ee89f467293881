"""The forward working set in `ftbench plan` (issue 22): what a forward that saves nothing
holds at once (an evaluation, a frozen backbone), traced on meta, checked against a real
forward's RSS growth, and counted in head-only's peak at the evaluation's batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ftbench.plan.device import DeviceInfo
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

CPU = DeviceInfo("cpu", "test cpu", 8000.0, 4000.0, "test")
ROOT = Path(__file__).resolve().parent.parent


def head_only(batch: int, eval_batch: int | None, seq: int = 128) -> RunSpec:
    return RunSpec(preset="t", model="tiny-bert", task="classification",
                   data=DataSpec(name="imdb", train_size=40),
                   train=TrainParams(batch_size=batch, eval_batch_size=eval_batch, max_length=seq,
                                     max_steps=5, precision="fp32"),
                   method=MethodSpec("head-only"))


def test_head_only_peak_holds_the_forward_working_set_of_the_eval_batch() -> None:
    from ftbench.plan.estimate import predict

    small, twice, large = (predict(head_only(8, eb), CPU).memory for eb in (8, 16, 64))
    default = predict(head_only(8, None), CPU).memory
    assert default == twice  # the Trainer's rule: the evaluation runs at twice the batch
    assert 0 < small.forward_working_set <= twice.forward_working_set < large.forward_working_set
    # a frozen backbone saves next to nothing, so its peak is the forward working set
    for m in (small, twice, large):
        assert m.activations + m.backward_working_set < m.forward_working_set / 10
        assert m.peak == (m.weights_total + m.optimizer + m.master_copies + m.workspace
                          + m.forward_working_set)
    # it grows with the evaluation's batch (each block's outputs are per example), training
    # batch unchanged
    # (at batch 8 the training forward, whose attention dropout takes the math path with its
    # seq x seq scores, holds more than the evaluation does)
    assert large.forward_working_set > 3 * small.forward_working_set
    assert large.peak - small.peak == large.forward_working_set - small.forward_working_set
    assert large.to_dict()["forward_working_set_mb"] > small.to_dict()["forward_working_set_mb"] > 0


def test_full_fine_tuning_peak_stays_with_its_saved_activations() -> None:
    """A trainable forward saves most of what it holds: its forward working set (evaluation
    at twice the batch) stays below activations + backward working set, and PEAK with it."""
    from dataclasses import replace

    from ftbench.plan.estimate import predict

    m = predict(replace(head_only(8, None), method=MethodSpec("full")), CPU).memory
    assert 0 < m.forward_working_set < m.activations + m.backward_working_set
    assert m.peak == (m.weights_total + m.optimizer + m.master_copies + m.workspace
                      + m.activations + m.backward_working_set)


@pytest.mark.parametrize("training", [False, True])
def test_the_traced_peak_is_exact_at_any_batch(training: bool) -> None:
    """The lines from the batch-2 and batch-3 timelines give the traced peak at every batch,
    also where a batch-independent tensor outweighs the activations (small batches)."""
    import torch

    from ftbench.plan.estimate import _forward_live, _peak_line
    from ftbench.plan.live import LINE_BATCHES
    from ftbench.plan.meta import build_meta_model, load_config

    spec = head_only(4, None)
    meta = build_meta_model(spec, load_config(spec, 2), torch.float32)
    line = _peak_line(*(_forward_live(meta, "classification", b, 128, torch.bfloat16, "cpu", training)
                        for b in LINE_BATCHES))
    for batch in (1, 5, 16, 64):
        direct = max(_forward_live(meta, "classification", batch, 128, torch.bfloat16, "cpu", training))
        assert line.at(batch) == direct, batch


_MEASURE = """
import gc, sys, warnings
from pathlib import Path
import torch
warnings.simplefilter("ignore")
from transformers import AutoModelForSequenceClassification
from ftbench.methods import apply_method
from ftbench.models import resolve_model
from ftbench.plan.estimate import _forward_live
from ftbench.plan.meta import build_meta_model, load_config
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

training = sys.argv[1] == "train"
batch, seq = 64, 128
spec = RunSpec(preset="t", model="tiny-bert", task="classification", data=DataSpec(name="imdb"),
               train=TrainParams(batch_size=batch, max_length=seq), method=MethodSpec("head-only"))
meta = build_meta_model(spec, load_config(spec, 2), torch.float32)
traced = max(_forward_live(meta, "classification", batch, seq, None, "cpu", training))
model = AutoModelForSequenceClassification.from_pretrained(resolve_model("tiny-bert").path, num_labels=2)
model = apply_method(model, spec.method, "classification").train(training)
ids = torch.randint(5, 100, (batch, seq))
inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
          "labels": torch.zeros(batch, dtype=torch.long)}

def status(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return int(line.split()[1]) / 1024

with torch.no_grad():
    model(**inputs)  # first call: one-off buffers (thread pools, kernels) are not the forward's
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    base = status("VmRSS:")
    model(**inputs)
print(traced / 2**20, status("VmHWM:") - base)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux clear_refs")
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_the_traced_forward_working_set_is_what_a_real_forward_grows_by(mode: str) -> None:
    """A real tiny-bert forward without autograd, batch 64 x 128, RSS following live memory
    (mmap threshold fixed at 64 KiB): its growth is the traced peak within 10 %. In training
    mode attention dropout sends CPU attention down the math path, whose seq x seq scores
    (3 at once, `LiveBytes.bump`) double the peak: measured 16 MB in eval, 36 MB in train."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, mode], capture_output=True, text=True, cwd=ROOT,
        timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536",
                          "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    traced, measured = map(float, proc.stdout.split()[-2:])
    assert measured > 8, (traced, measured)
    assert abs(traced - measured) <= 0.10 * measured, (traced, measured)
