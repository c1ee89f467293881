"""Evaluation results are in dataset order on every device, whatever the samplers do.

On the first GPU run, length grouping (ftbench's default on CUDA) was applied to evaluation
too by transformers 5, so QA predictions came back shuffled against the windows and questions
post-processing maps them to: start/end token accuracy looked fine, exact match was 0. These
tests force the GPU-only grouping on a CPU. Evaluation itself now runs longest first
(engine/evalorder.py) and puts the predictions back in dataset order before the metrics: the
oracle must still score 1.0, and sorted and unsorted evaluation must agree.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from ftbench.engine.runner import run
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def qa_spec(group: bool, lr: float = 1e-3, evals: int = 24, precision: str = "auto") -> RunSpec:
    return RunSpec(
        preset="qa-order", model="tiny-bert", task="qa",
        # filler sentences make contexts (and so windows per question and window lengths)
        # vary, which is what a length-grouped sampler reorders by
        data=DataSpec(name="synthetic-qa", train_size=16, eval_size=evals,
                      options={"doc_stride": 16, "filler": 3}),
        train=TrainParams(epochs=None, max_steps=2, batch_size=4, eval_batch_size=3,
                          learning_rate=lr, max_length=48, logging_steps=1, group_by_length=group,
                          precision=precision),
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
    record = run(qa_spec(group=True), runs_dir=tmp_path, wrap_model=Oracle).record
    assert record.status == "completed", record.error
    assert record.environment["train_sampling"] == "group_by_length"
    assert record.environment["eval_sampling"].startswith("sorted by length, longest first")
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


@pytest.mark.parametrize("lever_off", ["", "eval_sort"])
def test_oracle_scores_one_sorted_and_unsorted(lever_off: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTBENCH_LEVERS_OFF", lever_off)
    record = run(qa_spec(group=False), runs_dir=tmp_path, wrap_model=Oracle).record
    assert record.status == "completed", record.error
    assert record.environment["eval_sampling"].startswith(
        "sequential" if lever_off else "sorted by length")
    m = record.metrics
    assert (m["exact_match"], m["f1"], m["start_accuracy"], m["end_accuracy"]) == (1.0, 1.0, 1.0, 1.0)


def test_sorted_evaluation_gives_the_metrics_of_dataset_order(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # learning rate 0: the same seeded weights evaluated in two orders, in fp32 (bf16 rounds
    # differently with other padding). Every per-example decision must agree. The loss is the
    # Trainer's mean of batch means, each weighted by the full eval batch size, so it moves a
    # little when the short last batch holds other examples.
    spec = qa_spec(group=False, lr=0.0, precision="fp32")
    sorted_ = run(spec, runs_dir=tmp_path).record
    monkeypatch.setenv("FTBENCH_LEVERS_OFF", "eval_sort")
    plain = run(spec, runs_dir=tmp_path).record
    assert sorted_.status == plain.status == "completed", (sorted_.error, plain.error)
    assert sorted_.environment["eval_sampling"] != plain.environment["eval_sampling"]
    keys = ("exact_match", "f1", "has_ans_exact", "has_ans_f1", "no_ans_exact", "start_accuracy",
            "end_accuracy", "no_answer_rate", "questions", "windows")
    assert {k: sorted_.metrics[k] for k in keys} == {k: plain.metrics[k] for k in keys}
    assert sorted_.metrics["loss"] == pytest.approx(plain.metrics["loss"], rel=1e-2)


class BatchShapes(torch.nn.Module):
    """The real model, noting each evaluation batch's padded width and true lengths."""

    def __init__(self, inner: Any, seen: list[tuple[int, list[int]]]) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.seen = seen

    def forward(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
                start_positions: Any = None, end_positions: Any = None) -> Any:
        if not self.training:
            self.seen.append((int(input_ids.shape[1]), attention_mask.sum(dim=1).tolist()))
        return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, start_positions=start_positions,
                          end_positions=end_positions)


def test_evaluation_batches_run_longest_first_padded_to_their_own_longest(tmp_path: Path) -> None:
    seen: list[tuple[int, list[int]]] = []
    spec = qa_spec(group=False)
    record = run(spec, runs_dir=tmp_path, wrap_model=lambda m: BatchShapes(m, seen)).record
    assert record.status == "completed", record.error
    evaluations = record.metrics["windows"]
    batches = seen[-math.ceil(evaluations / spec.train.eval_batch_size):]  # the last evaluation
    lengths = [n for _, batch in batches for n in batch]
    assert len(lengths) == evaluations and len(set(lengths)) > 1
    assert lengths == sorted(lengths, reverse=True)          # longest first, across batches
    assert all(width == max(batch) for width, batch in batches)  # no padding past the longest
