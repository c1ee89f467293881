"""--offline sizes: the preset's [offline] sizing is for a CPU; a CUDA GPU keeps the preset's own."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ftbench.engine.runner import run
from ftbench.presets import Overrides, expand, load_preset
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def test_offline_lora_qa_is_sized_per_device() -> None:
    (spec,) = expand(load_preset("lora-qa"), Overrides(offline=True))
    assert spec.model == "minilm-l6" and spec.data.name == "squad_v2-offline"
    assert (spec.data.train_size, spec.data.eval_size) == (4000, 1000)
    assert spec.device_settings == {"cpu": {"train_size": 1500, "eval_size": 500},
                                    "cuda": {"train_size": 20000, "learning_rate": 1e-3}}
    gpu, note = spec.sized_for("cuda")
    assert (gpu.data.train_size, gpu.data.eval_size) == (20000, 1000) and not gpu.device_settings
    assert gpu.learning_rate == 1e-3 and gpu.train.epochs == 2
    assert note == ("--offline on a CUDA GPU: train_size 4000 -> 20000, learning_rate 0.0003 -> 0.001 "
                    "(the preset's [offline] settings)") and note in gpu.substitutions
    cpu, note = spec.sized_for("cpu")
    assert (cpu.data.train_size, cpu.data.eval_size) == (1500, 500) and not cpu.device_settings
    assert cpu.learning_rate == 3e-4
    assert note in cpu.substitutions and "train_size 4000 -> 1500" in note
    # a resolved spec round-trips through the record
    assert RunSpec.from_dict(spec.to_dict()).device_settings == spec.device_settings


def test_gpu_keys_alone_leave_a_cpu_run_at_the_preset_sizes() -> None:
    from ftbench.presets import parse_preset_text

    text = ('title="t"\ndescription="d"\nreproduces="r"\nmodel="bert-base-uncased"\ntask="classification"\n'
            '[data]\nname="imdb"\ntrain_size=300\n[train]\nmax_steps=5\n[[methods]]\nname="full"\n'
            '[offline]\ngpu_train_size=900\n')
    (spec,) = expand(parse_preset_text(text), Overrides(offline=True))
    assert spec.sized_for("cpu")[0].data.train_size == 300
    assert "own sizes" in spec.sized_for("cpu")[1]
    assert spec.sized_for("cuda")[0].data.train_size == 900


def test_sizes_given_on_the_command_line_win_everywhere() -> None:
    (spec,) = expand(load_preset("lora-qa"), Overrides(offline=True, train_size=200))
    assert spec.data.train_size == 200
    assert spec.device_settings == {"cpu": {"eval_size": 500}, "cuda": {"learning_rate": 1e-3}}
    cpu, _ = spec.sized_for("cpu")
    assert (cpu.data.train_size, cpu.data.eval_size) == (200, 500)
    gpu, _ = spec.sized_for("cuda")
    assert (gpu.data.train_size, gpu.data.eval_size) == (200, 1000)
    (online,) = expand(load_preset("lora-qa"))
    assert not online.device_settings and online.sized_for("cpu") == (online, None)


def test_engine_applies_the_cpu_sizing_and_records_it(tmp_path: Path) -> None:
    spec = RunSpec(preset="sizing", model="tiny-bert", task="classification",
                   data=DataSpec(name="synthetic-sentiment", train_size=400, eval_size=300),
                   train=TrainParams(epochs=None, max_steps=2, batch_size=8, max_length=32,
                                     logging_steps=1),
                   method=MethodSpec(name="head-only"), offline=True,
                   device_settings={"cpu": {"train_size": 24, "eval_size": 16}})
    record = run(spec, runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    assert record.spec["data"]["train_size"] == 24 and record.spec["data"]["eval_size"] == 16
    assert record.spec["device_settings"] == {}
    assert "train_size 400 -> 24" in record.data_info["sizing"]
    assert record.data_info["eval_size"] == 16
    assert any("[offline] settings" in s for s in record.spec["substitutions"])
    assert replace(spec, device_settings={}).sized_for("cpu")[1] is None


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
