"""The spec → TrainingArguments mapping, every device branch forced on a CPU."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ftbench.engine.trainargs import training_args, training_kwargs
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def spec(**train: object) -> RunSpec:
    base = TrainParams(epochs=2, batch_size=16, learning_rate=3e-4, warmup_ratio=0.1,
                       logging_steps=20, max_length=128)
    return RunSpec(preset="p", model="tiny-bert", task="classification",
                   data=DataSpec(name="synthetic-sentiment"), train=replace(base, **train),
                   method=MethodSpec(name="lora", learning_rate=1e-3), seed=9)


CASES = [
    # (device, precision, train overrides, expected subset)
    ("cuda", "bf16", {}, dict(bf16=True, fp16=False, use_cpu=False, optim="adamw_torch_fused",
                             train_sampling_strategy="group_by_length", dataloader_pin_memory=True,
                             dataloader_num_workers=0)),
    ("cuda", "fp16", {}, dict(bf16=False, fp16=True, optim="adamw_torch_fused")),
    ("cuda", "bf16", {"group_by_length": False}, dict(train_sampling_strategy="random")),
    ("cpu", "fp32", {}, dict(bf16=False, fp16=False, use_cpu=True, optim="adamw_torch",
                             train_sampling_strategy="random", dataloader_pin_memory=False,
                             dataloader_num_workers=0)),
    ("cpu", "bf16", {"group_by_length": True}, dict(bf16=True, train_sampling_strategy="group_by_length")),
    ("cpu", "fp32", {"eval_steps": 50}, dict(eval_strategy="steps", eval_steps=50)),
    ("cpu", "fp32", {}, dict(eval_strategy="epoch", eval_steps=None, num_train_epochs=2,
                             max_steps=-1)),
    ("cpu", "fp32", {"epochs": None, "max_steps": 30}, dict(num_train_epochs=1.0, max_steps=30)),
    ("cpu", "fp32", {"torch_compile": True}, dict(torch_compile=True)),
    ("cpu", "fp32", {"gradient_checkpointing": True},
     dict(gradient_checkpointing=True, gradient_checkpointing_kwargs={"use_reentrant": False})),
    ("cpu", "fp32", {"eval_batch_size": 5, "grad_accum": 3},
     dict(per_device_train_batch_size=16, per_device_eval_batch_size=5, gradient_accumulation_steps=3)),
    ("cpu", "fp32", {"warmup_ratio": 0.0, "logging_steps": 3}, dict(warmup_steps=0.0, logging_steps=3,
                                                                   logging_strategy="steps")),
    ("cuda", "fp32", {"group_by_length": None}, dict(bf16=False, fp16=False,
                                                     train_sampling_strategy="group_by_length")),
    ("cpu", "fp32", {"group_by_length": None}, dict(train_sampling_strategy="random")),
]


@pytest.mark.parametrize("asked, resolved", [(None, False), (True, True), (False, False)])
def test_compile_resolved_by_the_engine_wins(asked: bool | None, resolved: bool) -> None:
    kw = training_kwargs(spec(torch_compile=asked), device="cuda", precision="bf16")
    assert kw["torch_compile"] is bool(asked)
    kw = training_kwargs(spec(torch_compile=asked), device="cuda", precision="bf16", compile=resolved)
    assert kw["torch_compile"] is resolved


def test_trackers_and_compile_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    kw = training_kwargs(replace(spec(), report_to=("tensorboard",)), device="cpu", precision="fp32")
    assert kw["report_to"] == ["tensorboard"] and kw["torch_compile_backend"] is None
    monkeypatch.setenv("FTBENCH_COMPILE_BACKEND", "aot_eager")
    assert training_kwargs(spec(), device="cpu", precision="fp32")["torch_compile_backend"] == "aot_eager"


def test_the_mapping_is_pure() -> None:
    s = spec(group_by_length=True)
    before = s.to_dict()
    first = training_kwargs(s, device="cuda", precision="bf16")
    assert training_kwargs(s, device="cuda", precision="bf16") == first
    assert s.to_dict() == before


@pytest.mark.parametrize("device,precision,overrides,expected", CASES)
def test_mapping(device: str, precision: str, overrides: dict, expected: dict) -> None:
    kw = training_kwargs(spec(**overrides), device=device, precision=precision)
    assert {k: kw[k] for k in expected} == expected


def test_common_fields_and_method_learning_rate() -> None:
    kw = training_kwargs(spec(), device="cpu", precision="fp32", run_name="r1", label_names=["labels"])
    assert kw["dataloader_num_workers"] == 0
    assert kw["learning_rate"] == 1e-3                  # the method's own rate wins
    assert kw["warmup_steps"] == 0.1                    # a share of the steps (transformers 5)
    assert kw["logging_steps"] == 20 and kw["logging_nan_inf_filter"] is False
    assert kw["per_device_eval_batch_size"] == 32       # default: twice the training batch
    assert kw["seed"] == kw["data_seed"] == 9
    assert kw["save_strategy"] == "no" and kw["report_to"] == "none"
    assert kw["label_names"] == ["labels"] and kw["run_name"] == "r1"


def test_auto_batch_size_overrides_the_spec() -> None:
    kw = training_kwargs(spec(), device="cuda", precision="bf16", batch_size=512)
    assert kw["per_device_train_batch_size"] == 512 and kw["per_device_eval_batch_size"] == 1024
    with pytest.raises(ValueError, match="resolved"):
        training_kwargs(spec(batch_size="auto"), device="cuda", precision="bf16")


def test_transformers_accepts_the_mapping(tmp_path: object) -> None:
    args = training_args(spec(), device="cpu", precision="fp32", output_dir=str(tmp_path))
    assert args.train_sampling_strategy == "random" and args.use_cpu
    grouped = training_args(spec(group_by_length=True), device="cpu", precision="fp32",
                            output_dir=str(tmp_path))
    assert grouped.train_sampling_strategy == "group_by_length"


def test_levers_can_be_turned_off_for_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbench.engine.collate import pad_multiple
    from ftbench.errors import FtbenchError

    monkeypatch.setenv("FTBENCH_LEVERS_OFF", "fused_adamw,pad_multiple")
    kw = training_kwargs(spec(), device="cuda", precision="bf16")
    assert kw["optim"] == "adamw_torch" and pad_multiple("cuda", False) == 1
    monkeypatch.setenv("FTBENCH_LEVERS_OFF", "warp_drive")
    with pytest.raises(FtbenchError, match="unknown lever 'warp_drive'"):
        training_kwargs(spec(), device="cuda", precision="bf16")


def test_collator_lever_in_a_run(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbench.engine.runner import run

    s = replace(spec(max_steps=2, epochs=None, logging_steps=1),
                data=DataSpec(name="synthetic-sentiment", train_size=16, eval_size=8))
    monkeypatch.setenv("FTBENCH_LEVERS_OFF", "pad_collator")
    off = run(s, runs_dir=tmp_path).record
    monkeypatch.delenv("FTBENCH_LEVERS_OFF")
    on = run(s, runs_dir=tmp_path).record
    assert off.environment["levers_off"] == ["pad_collator"] and on.environment["levers_off"] == []
    # identical batches on a CPU: the same losses whichever collator built them
    assert [p["loss"] for p in off.series["train"]] == [p["loss"] for p in on.series["train"]]


def test_a_misspelt_lever_stops_the_cli_before_training(tmp_path) -> None:
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "ftbench.cli", "run", "--preset", "quickstart",
                           "--headless", "--runs-dir", str(tmp_path)], capture_output=True, text=True,
                          env={**os.environ, "FTBENCH_LEVERS_OFF": "pad_colator"}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "ftbench: error: FTBENCH_LEVERS_OFF: unknown lever 'pad_colator' (known: pad_collator, "
        "pad_multiple, fused_adamw, eval_sort, prepared_cache)"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("task, eval_steps, strategy, loss_only", [
    ("classification", None, "epoch", False),
    ("classification", 10, "steps", False),
    # the SFT evaluator measures the tuned model's held-out loss when training ends: the
    # Trainer evaluates only when asked to, and never gathers a causal LM's logits
    ("causal-lm", None, "no", True),
    ("causal-lm", 10, "steps", True),
])
def test_when_the_trainer_evaluates(task: str, eval_steps: int | None, strategy: str,
                                    loss_only: bool) -> None:
    kw = training_kwargs(replace(spec(eval_steps=eval_steps), task=task), device="cpu",
                         precision="fp32")
    assert (kw["eval_strategy"], kw["prediction_loss_only"]) == (strategy, loss_only)
    # TrainingArguments accepts them
    args = training_args(replace(spec(eval_steps=eval_steps), task=task), device="cpu",
                         precision="fp32", output_dir="unused")
    assert (str(args.eval_strategy.value), args.prediction_loss_only) == (strategy, loss_only)
