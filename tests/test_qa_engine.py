"""Extractive QA through the one engine: real training steps on tiny random-init models, CPU.

Quality is not measured here (random-init models, a handful of steps); these tests pin what a
QA record holds and that every method runs the QA task through ``engine.run``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ftbench.engine.events import Eval
from ftbench.engine.runner import run
from ftbench.methods import METHOD_NAMES, qlora_available
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

QA_METRICS = {"exact_match", "f1", "has_ans_exact", "has_ans_f1", "has_ans_total", "no_ans_exact",
              "no_ans_f1", "no_ans_total", "start_accuracy", "end_accuracy", "no_answer_rate", "loss"}
SMALL_ARGS = {"lora": {"r": 4}, "qlora": {"r": 4}, "prefix": {"num_virtual_tokens": 4}}


def qa_spec(method: str = "full", model: str = "tiny-bert", steps: int = 1, train: int = 8,
            evals: int = 4, eval_steps: int | None = None, filler: int = 0) -> RunSpec:
    return RunSpec(
        preset="qa-test", model=model, task="qa",
        data=DataSpec(name="synthetic-qa", train_size=train, eval_size=evals,
                      options={"doc_stride": 16, "filler": filler}),
        train=TrainParams(epochs=None, max_steps=steps, batch_size=8, learning_rate=1e-3,
                          max_length=48, eval_steps=eval_steps, logging_steps=1),
        method=MethodSpec(name=method, args=dict(SMALL_ARGS.get(method, {}))),
        seed=11,
    )


def test_qa_run_records_official_metrics_series_and_baselines(tmp_path: Path) -> None:
    events: list[object] = []
    finished = run(qa_spec(steps=4, eval_steps=2, filler=1, train=32, evals=12), events.append,
                   runs_dir=tmp_path)
    record = finished.record
    assert record.status == "completed", record.error
    m = record.metrics
    assert QA_METRICS <= set(m) and m["squad_version"] == "2.0"
    assert m["questions"] == 12 and m["windows"] > 12          # long contexts were split
    assert m["has_ans_total"] + m["no_ans_total"] == 12
    for key in QA_METRICS - {"loss", "has_ans_total", "no_ans_total"}:
        assert 0.0 <= m[key] <= 1.0, key
    # EM is the has-answer / no-answer mix, as the official script computes it
    expected = (m["has_ans_exact"] * m["has_ans_total"] + m["no_ans_exact"] * m["no_ans_total"]) / 12
    assert m["exact_match"] == pytest.approx(expected)
    assert [e.step for e in events if isinstance(e, Eval)] == [2, 4]
    assert [p["step"] for p in record.series["eval"]] == [2, 4]
    assert all("exact_match" in p and "start_accuracy" in p for p in record.series["eval"])
    info = record.data_info
    assert info["squad_version"] == "2.0" and info["eval_size"] == 12
    assert info["baselines"]["no_answer"]["exact_match"] == pytest.approx(m["no_ans_total"] / 12)
    assert info["train_windows"] > info["train_windows_with_answer"] > 0
    assert record.params["head_modules"] == ["qa_outputs"]


def _runnable(method: str) -> bool:
    return method != "qlora" or qlora_available()[0]


@pytest.mark.parametrize("method", [m for m in METHOD_NAMES if _runnable(m)])
def test_every_method_trains_and_evaluates_qa(method: str, tmp_path: Path) -> None:
    record = run(qa_spec(method), runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    assert {"exact_match", "f1", "start_accuracy", "loss"} <= set(record.metrics)
    params = record.params
    assert 0 < params["trainable"] <= params["total"]
    if method != "full":
        assert params["trainable"] < params["total"]


def test_distilbert_qa_and_prefix_refused_where_the_architecture_cannot(tmp_path: Path) -> None:
    ok = run(qa_spec("lora", model="tiny-distilbert"), runs_dir=tmp_path).record
    assert ok.status == "completed", ok.error
    refused = run(qa_spec("prefix", model="tiny-distilbert"), runs_dir=tmp_path).record
    assert refused.status == "failed" and "not supported" in refused.error
    assert "\n" not in refused.error
