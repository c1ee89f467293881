"""benchmarks/reproduce.py: its verdict rules, its plan, and the reported figures it shows.

The write-ups' figures live in each preset's ``[[references]]``; these tests pin them to the
table of reported figures in docs/seeds.md, in both directions.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from ftbench.presets import builtin_presets, load_preset
from ftbench.results.record import RunRecord

ROOT = Path(__file__).resolve().parent.parent
SEEDS_DOC = ROOT / "docs" / "seeds.md"


def _load_script():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


reproduce = _load_script()

# docs/seeds.md's figure names -> the reference key a preset holds them under
FIGURES = {"accuracy": "accuracy", "exact match": "exact_match", "F1": "f1",
           "precision": "precision", "recall": "recall", "train time": "train_s",
           "throughput": "samples_per_s", "peak memory": "peak_mb", "trainable": "trainable",
           "trainable share": "trainable_pct"}
UNITS = {"%": 1.0, "min": 60.0, "s": 1.0, "MB": 1.0, "samples/s": 1.0, "M": 1e6, "K": 1e3, "": 1.0}


def reported_value(figure: str, text: str) -> float:
    """A figure as docs/seeds.md writes it ('2.96 min', '1-2 %', '~0.3M', '2,423 MB') in the
    unit its preset holds: seconds, counts, accuracy-like percentages as fractions, trainable
    shares as percentages, a range as its middle."""
    match = re.fullmatch(r"~?([\d.,]+)(?:-([\d.,]+))? ?(%|min|s|MB|samples/s|M|K|)", text.strip())
    assert match, f"cannot read {text!r}"
    low, high, unit = match.groups()
    value = float(low.replace(",", ""))
    if high:
        value = (value + float(high.replace(",", ""))) / 2
    value *= UNITS[unit]
    if unit == "%" and figure != "trainable share":
        value /= 100
    return value


def seeds_doc_figures() -> dict[tuple[str, str, str], float]:
    """(preset, method, reference key) -> value, from the table under 'The reported figures'."""
    text = SEEDS_DOC.read_text(encoding="utf-8")
    section = text.split("## The reported figures", 1)[1].split("\n## ", 1)[0]
    figures = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("preset", "") or set(cells[0]) <= set("-"):
            continue
        preset, method, figure, value = cells
        key = (preset.strip("`"), method, FIGURES[figure])
        assert key not in figures, key
        figures[key] = reported_value(figure, value)
    return figures


def test_reported_values_are_read_in_the_presets_units() -> None:
    assert reported_value("train time", "2.96 min") == pytest.approx(177.6)
    assert reported_value("accuracy", "90.15 %") == pytest.approx(0.9015)
    assert reported_value("trainable share", "10-15 %") == pytest.approx(12.5)
    assert reported_value("trainable", "~0.3M") == pytest.approx(300_000)
    assert reported_value("peak memory", "2,423 MB") == 2423
    with pytest.raises(AssertionError):
        reported_value("accuracy", "about ninety")


def test_the_presets_hold_exactly_the_figures_docs_seeds_md_reports() -> None:
    documented = seeds_doc_figures()
    held = {(name, ref.method, key): value for name in set(builtin_presets()) - _decoder_presets()
            for ref in load_preset(name).references for key, value in ref.metrics.items()}
    assert len(documented) >= 30
    assert sorted(set(held) - set(documented)) == []   # a reference the page does not report
    assert sorted(set(documented) - set(held)) == []   # a reported figure no preset holds
    for key, value in documented.items():
        assert held[key] == pytest.approx(value, rel=1e-3), key


def test_the_short_rows_in_docs_seeds_md_are_generated_from_the_kept_records() -> None:
    rows, _ = reproduce.build_table(reproduce.load_records(reproduce.DEFAULT_RUNS), mode="cpu")
    text = SEEDS_DOC.read_text(encoding="utf-8")
    block = text.split(reproduce.MARK_START, 1)[1].split(reproduce.MARK_END, 1)[0]
    assert block.strip() == reproduce.headline(rows)
    assert len(rows) >= 16


def _decoder_presets() -> set[str]:
    """causal-lm presets: their own page (docs/decoders.md, tests/test_decoder_docs.py)."""
    return {name for name in builtin_presets() if load_preset(name).task == "causal-lm"}


def test_the_plan_covers_every_preset_but_the_quickstart() -> None:
    assert {e.preset for e in reproduce.PLAN} == \
        set(builtin_presets()) - {"quickstart"} - _decoder_presets()
    for entry in reproduce.PLAN:  # a reduced CPU run always says so
        assert bool(entry.cpu_args) == bool(entry.cpu_why), entry.preset


def test_commands_are_offline_and_only_the_cpu_plan_shrinks(tmp_path: Path) -> None:
    entry = next(e for e in reproduce.PLAN if e.preset == "imdb-strategies")
    cpu = reproduce.command(entry, tmp_path, gpu=False, tiny=False)
    gpu = reproduce.command(entry, tmp_path, gpu=True, tiny=False)
    assert "--offline" in cpu and "--offline" in gpu
    assert "--train-size" in cpu and "--train-size" not in gpu
    assert cpu[cpu.index("--seeds") + 1] == "3"


def _verdict(**kw):
    base = dict(metric="metrics.accuracy", reported=0.9, measured=0.9, dataset="imdb",
                substitutions=[], reduced="")
    return reproduce.verdict(**{**base, **kw})


def test_verdicts_in_plain_words() -> None:
    assert _verdict(measured=0.905) == "reproduced within 1 pt"
    assert _verdict(measured=0.85) == "lower by 5.0 pt"
    assert _verdict(measured=0.93).startswith("higher by 3.0 pt")
    swapped = _verdict(measured=0.85, substitutions=[
        "model bert-base-uncased (hub) replaced by minilm-l6"], reduced="reduced")
    assert swapped == "lower by 5.0 pt (swapped model bert-base-uncased -> minilm-l6; reduced size)"
    assert _verdict(reported=1.0, dataset="synthetic-sentiment").startswith(
        "write-up's 100 % not credible: its synthetic reviews were separable")
    assert "real reviews" in _verdict(reported=1.0, dataset="imdb")
    assert _verdict(reported=None).startswith("no accuracy reported")
    assert re.search(r"0\.33 % measured vs ~1\.5 % reported",
                     _verdict(reported=None, trainable_pct=(1.5, 0.33)))
    assert _verdict(measured=None) == "not measured"
    assert _verdict(reported=None, measured=0.52).endswith(
        "measured only - at chance level: too little training at this size to judge the method")


def test_the_cpu_plan_tunes_imdb_strategies_and_sizes_lora_qa(tmp_path: Path) -> None:
    imdb = next(e for e in reproduce.PLAN if e.preset == "imdb-strategies")
    default, tuned = reproduce.commands(imdb, tmp_path, gpu=False, tiny=False)
    assert tuned == default + ["--tune"]  # the default run's size and seeds, tuned
    assert shlex.join(tuned).endswith("--train-size 320 --eval-size 200 --seeds 3 --tune")
    assert len(reproduce.commands(imdb, tmp_path, gpu=True, tiny=False)) == 1
    qa = next(e for e in reproduce.PLAN if e.preset == "lora-qa")
    assert qa.cpu_why == reproduce.REDUCED and not qa.cpu_tune  # --tune refuses QA presets
    assert reproduce.commands(qa, tmp_path, gpu=False, tiny=False) == [
        reproduce.command(qa, tmp_path, gpu=False, tiny=False)]
    assert "--train-size 400 --eval-size 200" in shlex.join(
        reproduce.command(qa, tmp_path, gpu=False, tiny=False))


def test_dry_run_prints_the_tune_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert reproduce.main(["--dry-run", "--only", "imdb-strategies", "--runs-dir",
                           str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].endswith("--seeds 3 --tune")
    assert reproduce.main(["--dry-run", "--tiny", "--only", "imdb-strategies", "--runs-dir",
                           str(tmp_path)]) == 0
    tiny = capsys.readouterr().out.splitlines()
    assert len(tiny) == 2 and "--tune" not in tiny[0]
    assert "--model tiny-bert --max-steps 2" in tiny[1] and "--seeds 1" in tiny[1]
    assert "--tune --tune-grid 1e-4,1e-3" in tiny[1]


def test_the_tiny_sweep_passes_the_sweep_checks(tmp_path: Path) -> None:
    """--tiny's sweep is checked as `ftbench run --tune` checks it before training anything
    (a validation carve of at least one batch), so the CI smoke test reaches the trials."""
    from ftbench.cli import _overrides, build_parser
    from ftbench.presets import expand
    from ftbench.tune.cli import config_from
    from ftbench.tune.sweep import plan_sweep

    entry = next(e for e in reproduce.PLAN if e.preset == "imdb-strategies")
    cmd = reproduce.tune_command(entry, tmp_path, tiny=True)
    args = build_parser().parse_args(cmd[3:])  # after `python -m ftbench`
    preset = load_preset(args.preset)
    plan = plan_sweep(expand(preset, _overrides(args)), config_from(args, preset), tmp_path,
                      seeds=args.seeds)
    assert [(m.method, m.size, m.seeds) for m in plan.methods] == [
        (m.name, 2, [preset.seed]) for m in preset.methods]


# --- the table from fixture records: tuned rows, sweep compute, at-chance explanations ------

CPU_ENV = {"device": "cpu", "device_name": None, "cpu": "AMD EPYC", "cpu_count": 2,
           "precision": "fp32"}


def _rec(preset: str, method: str, seed: int, *, metrics: dict[str, float], lr: float = 5e-4,
         tune: dict | None = None, task: str = "classification", data_info: dict | None = None,
         steps: int = 40, prediction: dict | None = None) -> RunRecord:
    spec = {"preset": preset, "model": "minilm-l6", "task": task, "seed": seed,
            "data": {"name": "imdb", "train_size": 320, "eval_size": 200},
            "train": {"epochs": 2.0, "batch_size": 16}, "method": {"name": method},
            "learning_rate": lr, "substitutions": []}
    if tune:
        spec["tune"] = tune
    role = (tune or {}).get("role", "default")
    return RunRecord(
        run_id=f"r-{preset}-{method}-{role}-{seed}-{lr:g}", preset=preset, method=method,
        status="completed", created_at="2026-12-07T00:00:00+00:00", spec=spec, metrics=metrics,
        params={"trainable": 74_498, "total": 22_787_714},
        timing={"train_s": 100.0, "total_s": 120.0, "steps": steps, "achieved_tflops": 0.05},
        environment=CPU_ENV, data_info=data_info or {}, prediction=prediction)


FINAL_TAG = {"role": "final", "study": "imdb-strategies-lora-abc", "trial": 4,
             "params": {"learning_rate": 1.6e-3},
             "validation": {"metric": "accuracy", "value": 0.781}, "validation_fraction": 0.2,
             "sweep": {"trials": 5, "seconds": 852.0, "device_hours": {"cpu": 0.2367}}}
# 1.2e11 FLOPs a step at the 0.05 TFLOP/s these records achieved: 2.4 s a step
PREDICTION = {"batch_size": 16, "max_length": 256, "time": {"flops_per_step": 1.2e11}}


def _sweep_records() -> list[RunRecord]:
    out = [_rec("imdb-strategies", "lora", s, metrics={"accuracy": a}, prediction=PREDICTION)
           for s, a in ((42, 0.51), (43, 0.52), (44, 0.50))]
    out += [_rec("imdb-strategies", "head-only", s, metrics={"accuracy": 0.70}) for s in (42, 43)]
    out += [_rec("imdb-strategies", "lora", 42, metrics={"accuracy": 0.99}, lr=lr,
                 tune={**FINAL_TAG, "role": "trial", "params": {"learning_rate": lr}})
            for lr in (5e-5, 1.6e-4, 5e-4, 1.6e-3, 5e-3)]
    out += [_rec("imdb-strategies", "lora", s, metrics={"accuracy": a}, lr=1.6e-3, tune=FINAL_TAG)
            for s, a in ((42, 0.80), (43, 0.82), (44, 0.84))]
    return out


def _rows(records: list[RunRecord], preset: str) -> list[list[str]]:
    rows, _ = reproduce.build_table(records, mode="cpu")
    return [r for r in rows if r[0] == preset]


def test_tuned_finals_form_a_row_after_the_default_row_and_trials_none() -> None:
    records = _sweep_records()
    rows = _rows(records, "imdb-strategies")
    assert [r[1] for r in rows] == ["lora", "lora (tuned: lr 1.6e-3)", "head-only"]
    assert rows[0][3] == "0.510 ± 0.010 (n=3)"
    assert rows[1][3] == "0.820 ± 0.020 (n=3)"  # the finals alone: no trial's 0.99 in the mean
    assert rows[1][10] == rows[0][10]  # the same size and hardware column
    assert not any("0.99" in cell for row in rows for cell in row)
    _, runs = reproduce.build_table(records, mode="cpu")
    tuned = next(line for line in runs if "(tuned" in line)
    assert "chosen by validation accuracy 0.781 on a 20% validation carve" in tuned
    assert not any("-trial-" in line for line in runs)


def test_the_sweep_compute_appears_once_per_preset_under_the_table(tmp_path: Path) -> None:
    records = _sweep_records()
    text = reproduce.render(records, mode="cpu", runs_dir=tmp_path / "runs",
                            out=tmp_path / "reproduction.md")
    line = "- imdb-strategies sweep: 5 trials, 14.2 CPU min; its finals: 3 runs, 6.0 CPU min"
    assert text.count(line) == 1
    assert text.index(line) > text.index("| imdb-strategies | lora (tuned: lr 1.6e-3) |")
    assert "13 in `runs/` (5 of them tuning trials)" in text
    assert "[docs/tuning.md](" in text and "validation split carved from the training data" in text
    # no finals yet: the trial records alone say what was spent
    trials_only = [r for r in records if (r.spec.get("tune") or {}).get("role") != "final"]
    assert reproduce.sweep_lines(trials_only, []) == [
        "- imdb-strategies sweep: 5 trials, 10.0 CPU min; no final runs yet"]


def test_an_at_chance_row_says_how_many_steps_it_trained_and_what_full_size_needs() -> None:
    (lora, tuned, _) = _rows(_sweep_records(), "imdb-strategies")
    assert lora[11].endswith(
        "(reduced size) - at chance: 40 optimizer steps at this reduced size; the preset's full "
        "size is 1,250 steps (10,000 x 2 epochs / 16), which `ftbench plan` predicts at 50 min "
        "on this CPU")
    assert "at chance" not in tuned[11]


def test_a_qa_row_at_the_no_answer_baseline_is_explained_too() -> None:
    info = {"train_size": 400, "train_windows": 420,
            "baselines": {"no_answer": {"exact_match": 0.5, "f1": 0.5}}}
    records = [_rec("lora-qa", "lora", 42, task="qa", data_info=info, steps=50,
                    metrics={"exact_match": 0.51, "f1": 0.52})]
    (row,) = _rows(records, "lora-qa")
    assert row[11].endswith(
        "- at chance: answering nothing scores EM 0.500; 50 optimizer steps at this reduced "
        "size; the preset's full size is 526 steps (4,000 questions ≈ 4,200 windows x 2 epochs "
        "/ 16)")
    assert _verdict(metric="metrics.exact_match", reported=0.387, measured=0.03).endswith(
        "at chance level: too little training at this size to judge the method")
    assert "chance" not in _verdict(metric="metrics.exact_match", reported=0.387, measured=0.4)
