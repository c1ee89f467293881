"""--offline sizes: the preset's [offline] sizing is for a CPU; a CUDA GPU keeps the preset's own.
Applied once, by `ftbench.prepare.resolve` for the device the runs train on; the engine trains
the spec it is given."""

from __future__ import annotations

from pathlib import Path

from ftbench.engine.events import Log
from ftbench.engine.runner import run
from ftbench.plan.device import DeviceInfo
from ftbench.prepare import resolve, sized
from ftbench.presets import Overrides, load_preset
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

CPU = DeviceInfo("cpu", "test cpu", 8000.0, 4000.0, "test")
GPU = DeviceInfo("cuda", "NVIDIA H100", 81559.0, 80000.0, "test")


def test_offline_lora_qa_is_sized_per_device() -> None:
    preset = load_preset("lora-qa")
    assert preset.offline_device == {"cpu": {"train_size": 1500, "eval_size": 500},
                                     "cuda": {"train_size": 20000, "learning_rate": 1e-3}}
    (gpu,) = resolve(preset, Overrides(offline=True), GPU).specs
    assert gpu.model == "minilm-l6" and gpu.data.name == "squad_v2-offline"
    assert (gpu.data.train_size, gpu.data.eval_size) == (20000, 1000) and gpu.resolved_for == "cuda"
    assert gpu.learning_rate == gpu.train.learning_rate == 1e-3 and gpu.train.epochs == 2
    note = gpu.sizing
    assert note == ("--offline on a CUDA GPU: train_size 4000 -> 20000, learning_rate 0.0003 -> 0.001 "
                    "(the preset's [offline] settings)") and note in gpu.substitutions
    (cpu,) = resolve(preset, Overrides(offline=True), CPU).specs
    assert (cpu.data.train_size, cpu.data.eval_size) == (1500, 500) and cpu.resolved_for == "cpu"
    assert cpu.learning_rate == 3e-4
    assert cpu.sizing in cpu.substitutions and "train_size 4000 -> 1500" in cpu.sizing
    # a resolved spec round-trips through the record (and a torchrun job file) unchanged
    assert RunSpec.from_dict(gpu.to_dict()) == gpu and RunSpec.from_dict(cpu.to_dict()) == cpu


def test_gpu_keys_alone_leave_a_cpu_run_at_the_preset_sizes() -> None:
    from ftbench.presets import parse_preset_text

    text = ('title="t"\ndescription="d"\nreproduces="r"\nmodel="bert-base-uncased"\ntask="classification"\n'
            '[data]\nname="imdb"\ntrain_size=300\n[train]\nmax_steps=5\n[[methods]]\nname="full"\n'
            '[offline]\ngpu_train_size=900\n')
    preset = parse_preset_text(text)
    (cpu,) = resolve(preset, Overrides(offline=True), CPU).specs
    assert cpu.data.train_size == 300 and "own sizes" in cpu.sizing
    assert cpu.sizing not in cpu.substitutions
    assert resolve(preset, Overrides(offline=True), GPU).specs[0].data.train_size == 900


def test_sizes_given_on_the_command_line_win_everywhere() -> None:
    preset = load_preset("lora-qa")
    (cpu,) = resolve(preset, Overrides(offline=True, train_size=200), CPU).specs
    assert (cpu.data.train_size, cpu.data.eval_size) == (200, 500)
    (gpu,) = resolve(preset, Overrides(offline=True, train_size=200), GPU).specs
    assert (gpu.data.train_size, gpu.data.eval_size) == (200, 1000) and gpu.learning_rate == 1e-3
    (online,) = resolve(preset, Overrides(), CPU).specs
    assert online.sizing is None and online.data.train_size == 4000 and online.resolved_for == "cpu"


def test_a_method_rate_is_the_run_rate() -> None:
    """One rule for one quantity: a method's own rate becomes train.learning_rate."""
    specs = resolve(load_preset("quickstart"), Overrides(), CPU).specs
    assert [(s.method.name, s.train.learning_rate, s.method.learning_rate) for s in specs] == [
        ("full", 1e-4, None), ("lora", 5e-3, None), ("head-only", 1e-2, None)]
    by_hand = RunSpec(preset="p", model="tiny-bert", task="classification", data=DataSpec("imdb"),
                      train=TrainParams(learning_rate=2e-5), method=MethodSpec("lora", learning_rate=1e-3))
    assert by_hand.learning_rate == by_hand.train.learning_rate == 1e-3
    assert by_hand.method.learning_rate is None


def test_the_engine_trains_the_spec_it_is_given_and_records_its_sizing(tmp_path: Path) -> None:
    spec = RunSpec(preset="sizing", model="tiny-bert", task="classification",
                   data=DataSpec(name="synthetic-sentiment", train_size=400, eval_size=300),
                   train=TrainParams(epochs=None, max_steps=2, batch_size=8, max_length=32,
                                     logging_steps=1),
                   method=MethodSpec(name="head-only"), offline=True)
    # prepared for a GPU (20 and 16 examples), trained here on the CPU: as given, with a warning
    gpu = sized(spec, "cuda", {"train_size": 24, "eval_size": 16})
    logs: list[Log] = []
    record = run(gpu, lambda e: logs.append(e) if isinstance(e, Log) else None, runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    assert record.spec == gpu.to_dict()
    assert record.spec["data"]["train_size"] == 24 and record.spec["data"]["eval_size"] == 16
    assert "train_size 400 -> 24" in record.data_info["sizing"]
    assert record.data_info["eval_size"] == 16
    assert any("[offline] settings" in s for s in record.spec["substitutions"])
    assert any(e.level == "warning" and "prepared for cuda and trains on cpu" in e.message
               for e in logs)


def _record(**timing: object):
    from ftbench.results.record import RunRecord

    r = RunRecord(run_id="r1", preset="lora-qa", method="lora", status="completed",
                  created_at="2026-12-04T00:00:00+00:00", spec={"seed": 42})
    r.timing.update(timing)
    return r


def test_summary_shows_qa_split_beside_the_baseline_and_steady_rates() -> None:
    from rich.console import Console

    from ftbench.headless import qa_lines, summary_table

    r = _record(samples_per_s=100.0, steady_samples_per_s=150.0)
    r.metrics = {"exact_match": 0.61, "f1": 0.66, "has_ans_exact": 0.48, "has_ans_total": 500,
                 "no_ans_exact": 0.74, "no_ans_total": 500}
    r.data_info = {"baselines": {"no_answer": {"exact_match": 0.5, "f1": 0.5}}}
    (line,) = qa_lines([r])
    assert "HasAns EM 0.480 (n=500)" in line and "NoAns EM 0.740" in line
    assert "no-answer baseline EM 0.500 (+0.110)" in line
    short = _record(samples_per_s=90.0)
    console = Console(width=80, record=True)
    console.print(summary_table([r, short]))
    text = console.export_text()
    assert "150.0" in text and "90.0*" in text and "steady state" in text
    assert qa_lines([short]) == []
