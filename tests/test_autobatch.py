"""batch_size = "auto" and the compile decision, CPU-forced (OOM simulated with the probe hook)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ftbench.engine.autobatch import (CPU_BATCH, MAX_BATCH, find_batch_size, resolve_compile,
                                      start_size)
from ftbench.engine.failures import is_oom as _is_oom
from ftbench.engine.runner import run
from ftbench.presets import Overrides, PresetError, expand, load_preset, parse_preset_text
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def oom_above(limit: int):
    def hook(size: int) -> None:
        if size > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {size} MiB")
    return hook


def test_halves_until_it_fits() -> None:
    tried: list[int] = []
    cleaned: list[int] = []

    def try_size(size: int) -> None:
        tried.append(size)
        oom_above(100)(size)

    found = find_batch_size(try_size, 1024, _is_oom, lambda: cleaned.append(1))
    assert found.batch_size == 64 and tried == [1024, 512, 256, 128, 64]
    assert len(cleaned) == 5
    assert found.describe() == ("batch_size auto -> 64 (1024: out of memory, 512: out of memory, "
                                "256: out of memory, 128: out of memory, 64: fits)")


def test_other_errors_propagate_and_nothing_fits_is_memory_error() -> None:
    def broken(size: int) -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError):
        find_batch_size(broken, 8, _is_oom)
    with pytest.raises(MemoryError):
        find_batch_size(oom_above(0), 8, _is_oom)


def test_start_size() -> None:
    assert start_size("cuda", 100_000) == MAX_BATCH
    assert start_size("cuda", 300) == 512 and start_size("cuda", 1) == 1
    assert start_size("cpu", 100_000) == CPU_BATCH


@pytest.mark.parametrize("asked,device,steps,method,on", [
    (True, "cpu", 5, "full", True), (False, "cuda", 10_000, "full", False),
    (None, "cpu", 10_000, "full", False), (None, "cuda", 999, "full", False),
    (None, "cuda", 1000, "full", True), (None, "cuda", 5000, "lora", True),
    (None, "cuda", 5000, "qlora", False), (None, "cuda", 5000, "prefix", False),
])
def test_compile_decision(asked, device, steps, method, on, monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbench.engine import autobatch

    monkeypatch.setattr(autobatch, "AUTO_COMPILE", True)   # the rule once measured
    decided, why = resolve_compile(asked, device, steps, method)
    assert decided is on and why


def test_auto_compile_stays_off_until_measured() -> None:
    assert resolve_compile(None, "cuda", 5000, "full") == (
        False, "auto: not yet measured to pay on a GPU; pass --compile to try it")
    assert resolve_compile(True, "cuda", 5000, "full") == (True, "asked for")


def spec(batch: int | str = "auto", compile: bool | None = None) -> RunSpec:
    return RunSpec(preset="auto", model="tiny-bert", task="classification",
                   data=DataSpec(name="synthetic-sentiment", train_size=128, eval_size=16),
                   train=TrainParams(epochs=None, max_steps=3, batch_size=batch, learning_rate=1e-3,
                                     max_length=32, logging_steps=1, torch_compile=compile),
                   method=MethodSpec(name="lora"), seed=3)


def test_engine_probes_and_trains_at_the_size_that_fits(tmp_path: Path) -> None:
    probes: list[int] = []

    def hook(size: int) -> None:
        probes.append(size)
        oom_above(8)(size)

    record = run(spec(), runs_dir=tmp_path, on_probe=hook).record
    assert record.status == "completed", record.error
    assert probes == [32, 16, 8]
    assert record.timing["batch_size"] == 8 and record.timing["train_samples"] == 3 * 8
    assert "32: out of memory, 16: out of memory, 8: fits" in record.environment["batch_size_auto"]
    assert record.spec["train"]["batch_size"] == "auto"      # what was asked stays in the spec
    nothing = run(spec(), runs_dir=tmp_path, on_probe=oom_above(0)).record
    assert nothing.status == "failed" and nothing.error.startswith("out of memory")


def test_fixed_batch_is_recorded_and_not_probed(tmp_path: Path) -> None:
    record = run(spec(batch=4), runs_dir=tmp_path, on_probe=oom_above(0)).record
    assert record.status == "completed" and record.timing["batch_size"] == 4
    assert "batch_size_auto" not in record.environment
    assert record.environment["torch_compile"] is False
    assert record.environment["torch_compile_reason"] == "auto: no CUDA GPU"


def test_compiled_run_trains_and_evaluates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dynamo traces the model as on a GPU; aot_eager skips kernel generation so this takes seconds
    monkeypatch.setenv("FTBENCH_COMPILE_BACKEND", "aot_eager")
    on = run(spec(batch=8, compile=True), runs_dir=tmp_path).record
    off = run(spec(batch=8, compile=False), runs_dir=tmp_path).record
    assert on.status == off.status == "completed", (on.error, off.error)
    assert on.environment["torch_compile"] is True and off.environment["torch_compile"] is False
    assert on.series["train"][0]["loss"] == pytest.approx(off.series["train"][0]["loss"], rel=1e-4)
    assert on.metrics["accuracy"] == off.metrics["accuracy"]


def test_batch_size_auto_in_presets_and_on_the_command_line() -> None:
    text = ('title="t"\ndescription="d"\nreproduces="r"\nmodel="tiny-bert"\ntask="classification"\n'
            '[data]\nname="synthetic-sentiment"\n[train]\nmax_steps=5\nbatch_size="auto"\n[[methods]]\nname="full"\n')
    assert parse_preset_text(text).train.batch_size == "auto"
    with pytest.raises(PresetError, match='or "auto"'):
        parse_preset_text(text.replace('"auto"', '"big"'))
    (s,) = expand(load_preset("quickstart"), Overrides(methods=("lora",), batch_size="AUTO"))
    assert s.train.batch_size == "auto"
    (s,) = expand(load_preset("quickstart"), Overrides(methods=("lora",), batch_size="12", compile=False))
    assert s.train.batch_size == 12 and s.train.torch_compile is False
    for bad in ("0", "many", "1e9"):
        with pytest.raises(PresetError, match="--batch-size"):
            expand(load_preset("quickstart"), Overrides(batch_size=bad))


def test_first_step_and_compile_time_reported_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTBENCH_COMPILE_BACKEND", "aot_eager")
    s = spec(batch=4, compile=True)
    s = replace(s, train=replace(s.train, max_steps=30, logging_steps=2))
    record = run(s, runs_dir=tmp_path).record
    t = record.timing
    assert record.status == "completed", record.error
    assert 0 < t["first_step_s"] < t["train_s"]
    assert t["warmup_steps"] == 20 and t["steady_steps"] == 10        # compiled: 20 warm-up steps
    per_step = t["steady_s"] / t["steady_steps"]
    assert t["compile_s"] == pytest.approx(max(0.0, t["first_step_s"] - per_step), abs=2e-3)
    plain = run(spec(batch=4, compile=False), runs_dir=tmp_path).record
    assert plain.timing["compile_s"] is None and plain.timing["first_step_s"] > 0
