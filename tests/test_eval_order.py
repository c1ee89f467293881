"""Evaluation runs in dataset order on every device, whatever the training sampler does.

On the first GPU run, length grouping (ftbench's default on CUDA) was applied to evaluation
too by transformers 5, so QA predictions came back shuffled against the windows and questions
post-processing maps them to: start/end token accuracy looked fine, exact match was 0. These
tests force the GPU-only grouping on a CPU.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from ftbench.engine.runner import Hooks, run
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def qa_spec(group: bool, lr: float = 1e-3, evals: int = 24) -> RunSpec:
    return RunSpec(
        preset="qa-order", model="tiny-bert", task="qa",
        # filler sentences make contexts (and so windows per question and window lengths)
        # vary, which is what a length-grouped sampler reorders by
        data=DataSpec(name="synthetic-qa", train_size=16, eval_size=evals,
                      options={"doc_stride": 16, "filler": 3}),
        train=TrainParams(epochs=None, max_steps=2, batch_size=4, eval_batch_size=3,
                          learning_rate=lr, max_length=48, logging_steps=1, group_by_length=group),
        method=MethodSpec(name="full"),
        seed=5,
    )


class Oracle(torch.nn.Module):
    """A real QA model whose start/end logits are replaced by the labels it is given: +10 at the
    gold position (the span, or CLS where the window holds no answer), -10 elsewhere. Its loss
    is the real model's, so training steps run as usual."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def forward(self, input_ids: Any = None, start_positions: Any = None, end_positions: Any = None,
                **kwargs: Any) -> Any:
        out = self.inner(input_ids=input_ids, start_positions=start_positions,
                         end_positions=end_positions, **kwargs)
        shape = input_ids.shape
        start = torch.full(shape, -10.0).scatter(1, start_positions[:, None], 10.0)
        end = torch.full(shape, -10.0).scatter(1, end_positions[:, None], 10.0)
        return type(out)(loss=out.loss, start_logits=start, end_logits=end)


def test_oracle_scores_one_through_the_real_eval_path_with_length_grouping(tmp_path: Path) -> None:
    record = run(qa_spec(group=True), runs_dir=tmp_path, hooks=Hooks(wrap_model=Oracle)).record
    assert record.status == "completed", record.error
    assert record.environment["train_sampling"] == "group_by_length"
    m = record.metrics
    assert m["windows"] > m["questions"] == 24      # several windows per question, varied
    assert m["has_ans_total"] > 0 and m["no_ans_total"] > 0
    assert m["exact_match"] == 1.0 and m["f1"] == 1.0, m
    assert m["has_ans_exact"] == 1.0 and m["no_ans_exact"] == 1.0
    assert m["start_accuracy"] == 1.0 and m["end_accuracy"] == 1.0


def test_same_weights_give_identical_metrics_with_grouping_on_and_off(tmp_path: Path) -> None:
    # learning rate 0: the weights after training are the seeded initial ones in both runs,
    # whatever order training saw the batches in, so evaluation must agree to the last digit
    on = run(qa_spec(group=True, lr=0.0), runs_dir=tmp_path).record
    off = run(qa_spec(group=False, lr=0.0), runs_dir=tmp_path).record
    assert on.status == off.status == "completed", (on.error, off.error)
    keys = ("exact_match", "f1", "has_ans_f1", "no_ans_exact", "start_accuracy", "end_accuracy",
            "no_answer_rate")
    assert {k: on.metrics[k] for k in keys} == {k: off.metrics[k] for k in keys}
    assert on.metrics["loss"] == pytest.approx(off.metrics["loss"], rel=1e-5)


def test_classification_eval_order_unaffected_by_grouping(tmp_path: Path) -> None:
    spec = RunSpec(
        preset="cls-order", model="tiny-bert", task="classification",
        data=DataSpec(name="synthetic-sentiment", train_size=32, eval_size=40),
        train=TrainParams(epochs=None, max_steps=2, batch_size=8, eval_batch_size=6,
                          learning_rate=0.0, max_length=48, logging_steps=1, group_by_length=True),
        method=MethodSpec(name="full"), seed=3)
    on = run(spec, runs_dir=tmp_path).record
    off = run(replace(spec, train=replace(spec.train, group_by_length=False)), runs_dir=tmp_path).record
    assert on.status == off.status == "completed"
    assert on.metrics["confusion_matrix"] == off.metrics["confusion_matrix"]
    assert on.metrics["accuracy"] == off.metrics["accuracy"]
