"""`ftbench run --tune` (ftbench.tune): the search space, bad input, the validation carve, trials
and finals on tiny CPU models, and two workers sharing one SQLite study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftbench.cli import main
from ftbench.data import load_classification
from ftbench.data.holdout import carve_validation
from ftbench.errors import DataUnavailable
from ftbench.spec import DataSpec, MethodSpec
from ftbench.tune import space as sp
from ftbench.tune.space import TuneConfig, TuneError

PRESET = """\
title = "tiny tune"
description = "tiny"
reproduces = "tests"
model = "tiny-bert"
task = "classification"
seeds = 2
seed = 7

[data]
name = "synthetic-sentiment"
train_size = 96
eval_size = 32

[train]
max_steps = {steps}
batch_size = 16
max_length = 32
learning_rate = 1e-3
eval_steps = 2
logging_steps = 1

[[methods]]
name = "full"

[[methods]]
name = "lora"
learning_rate = 5e-3
args = {{ r = 4, alpha = 8 }}
{extra}"""


def preset_file(tmp_path: Path, steps: int = 2, extra: str = "") -> str:
    path = tmp_path / "tiny.toml"
    path.write_text(PRESET.format(steps=steps, extra=extra))
    return str(path)


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


# --- the space -------------------------------------------------------------------------------

def test_default_grid_is_five_points_over_two_decades_around_the_preset_rate() -> None:
    assert sp.default_rates(1e-4, 5, 2.0) == (1e-5, 3.16e-5, 1e-4, 3.16e-4, 1e-3)
    space = sp.method_space(TuneConfig(), MethodSpec(name="lora"), 5e-3)
    assert space == {"learning_rate": (5e-4, 0.00158, 5e-3, 0.0158, 5e-2)}


def test_grid_names_other_hyperparameters_per_method() -> None:
    config = sp.parse_config({"grid": {"learning_rate": [1e-4, 1e-3], "lora.r": [4, 8],
                                       "warmup_ratio": [0.0, 0.1]}})
    lora = sp.method_space(config, MethodSpec(name="lora"), 1e-3)
    full = sp.method_space(config, MethodSpec(name="full"), 1e-3)
    assert len(sp.grid_points(lora)) == 8 and len(sp.grid_points(full)) == 4
    assert "r" in lora and "r" not in full


@pytest.mark.parametrize("table, words", [
    ({"grid": {"learning_rate": []}}, "the grid is empty"),
    ({"grid": {"learning_rate": [1e-3, 0]}}, "> 0"),
    ({"grid": {"learning_rate": [-1e-3]}}, "> 0"),
    ({"sampler": "random"}, "expected one of grid, tpe"),
    ({"validation_fraction": 0}, "validation_fraction"),
    ({"color": 1}, "unknown key"),
])
def test_bad_tune_tables_are_one_line(table: dict, words: str) -> None:
    with pytest.raises(TuneError, match=words):
        sp.parse_config(table)


def test_an_argument_the_method_refuses_is_refused_before_training() -> None:
    from ftbench.tune.sweep import plan_sweep
    from ftbench.presets import expand, parse_preset_text

    preset = parse_preset_text(PRESET.format(steps=2, extra="[tune]\ngrid = { \"lora.r\" = [0, 4] }\n"))
    with pytest.raises(TuneError, match="lora"):
        plan_sweep(expand(preset), sp.parse_config(preset.tune), Path("/nonexistent"))


# --- bad input on the command line: one line, exit 2, nothing written --------------------------

@pytest.mark.parametrize("flags, words", [
    (["--tune-grid", ""], "the grid is empty"),
    (["--tune-grid", "1e-3,0"], "> 0"),
    (["--tune-grid", "1e-3,abc"], "not a number"),
    (["--validation-fraction", "0.1"], "less than one batch"),
    (["--tune-storage", "sqlite:////no/such/folder/t.db"], "cannot open the study storage"),
    (["--tune-storage", "nosuchdb://x/y"], "cannot open the study storage"),
    (["--nproc-per-node", "2"], "--nproc-per-node is not supported"),
    (["--parallel"], "--parallel is not supported"),
])
def test_bad_tune_flags_exit_2_with_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                               flags: list[str], words: str) -> None:
    runs = tmp_path / "runs"
    code = main(["run", "--preset", preset_file(tmp_path), "--tune", "--headless", "--runs-dir", str(runs),
                 *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and words in err, err
    assert not list(runs.glob("*.json")) if runs.exists() else True
    assert not (runs / "tune.db").exists()


def test_tuning_a_qa_preset_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--preset", "lora-qa", "--offline", "--tune", "--headless", "--runs-dir",
                 str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "supports classification presets" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_tune_flags_without_tune_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["run", "--preset", preset_file(tmp_path), "--study", "x", "--runs-dir", str(tmp_path)])
    assert code == 2 and "need --tune" in capsys.readouterr().err


def test_a_study_name_with_another_space_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from ftbench.presets import expand, parse_preset_text
    from ftbench.tune.sweep import open_studies, plan_sweep

    preset = parse_preset_text(PRESET.format(steps=2, extra=""))
    first = plan_sweep(expand(preset), TuneConfig(study="same", grid={"learning_rate": (1e-4, 1e-3)}), tmp_path)
    open_studies(first)
    code = main(["run", "--preset", preset_file(tmp_path), "--tune", "--study", "same", "--headless",
                 "--tune-grid", "1e-4,1e-2", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "already exists with a different search space" in err
    assert not list(tmp_path.glob("*.json"))


# --- the validation carve -----------------------------------------------------------------------

def test_validation_carve_comes_from_the_training_set_only() -> None:
    spec = DataSpec(name="synthetic-sentiment", train_size=96, eval_size=32)
    plain = load_classification(spec, seed=7, offline=True)
    carved = load_classification(
        DataSpec(name="synthetic-sentiment", train_size=96, eval_size=32,
                 options={"validation_fraction": 0.25, "split_seed": 7}), seed=7, offline=True)
    assert len(carved.eval_texts) == 24 and len(carved.train_texts) == 72
    assert set(carved.eval_texts) | set(carved.train_texts) == set(plain.train_texts)
    assert not set(carved.eval_texts) & set(carved.train_texts)
    assert not set(carved.eval_texts) & set(plain.eval_texts)


def test_a_carve_that_leaves_nothing_is_one_line() -> None:
    data = load_classification(DataSpec(name="synthetic-sentiment", train_size=4, eval_size=4), seed=1,
                               offline=True)
    with pytest.raises(DataUnavailable, match="leaves 0 for validation"):
        carve_validation(data, DataSpec(name="x", options={"validation_fraction": 0.05}), 1)


def test_trials_never_evaluate_or_even_tokenize_the_eval_set(tmp_path: Path, monkeypatch) -> None:
    """Every text a trial tokenizes is a training text; none is an eval (test) text."""
    import ftbench.tasks.classification_task as ct
    from ftbench.presets import expand, parse_preset_text
    from ftbench.tune.sweep import plan_sweep, run_sweep

    seen: list[str] = []
    real = ct.tokenize

    def spy(tokenizer, texts, *args, **kwargs):
        seen.extend(texts)
        return real(tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(ct, "tokenize", spy)
    preset = parse_preset_text(PRESET.format(steps=2, extra=""))
    specs = [s for s in expand(preset) if s.method.name == "lora"]
    plan = plan_sweep(specs, TuneConfig(grid={"learning_rate": (1e-3, 1e-2)}), tmp_path)
    code = run_sweep(plan, str(tmp_path), stream=open(tmp_path / "log", "w"), trials_only=True)
    assert code == 0
    plain = load_classification(specs[0].data, seed=7, offline=True)
    assert seen and set(seen) <= set(plain.train_texts)
    assert not set(seen) & set(plain.eval_texts)
    trials = records(tmp_path)
    assert len(trials) == 2 and all(r["spec"]["tune"]["role"] == "trial" for r in trials)
    assert all(r["data_info"]["eval_size"] == 19 for r in trials)  # round(96 * 0.2)


# --- a whole sweep ------------------------------------------------------------------------------

def test_sweep_runs_trials_then_finals_linked_by_study(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs"
    code = main(["run", "--preset", preset_file(tmp_path), "--tune", "--tune-grid", "1e-4,1e-2",
                 "--method", "lora", "--seeds", "2", "--headless", "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0, out[-2000:]
    got = records(runs)
    trials = [r for r in got if r["spec"]["tune"]["role"] == "trial"]
    finals = [r for r in got if r["spec"]["tune"]["role"] == "final"]
    assert sorted(r["spec"]["tune"]["params"]["learning_rate"] for r in trials) == [1e-4, 1e-2]
    assert len(finals) == 2 and sorted(r["spec"]["seed"] for r in finals) == [7, 8]
    best = max(trials, key=lambda r: (r["metrics"]["accuracy"], -r["spec"]["tune"]["trial"]))
    for r in finals:
        tag = r["spec"]["tune"]
        assert tag["study"] == trials[0]["spec"]["tune"]["study"]
        assert r["spec"]["learning_rate"] == best["spec"]["learning_rate"] == tag["params"]["learning_rate"]
        assert tag["validation"]["value"] == pytest.approx(best["metrics"]["accuracy"])
        assert tag["sweep"]["trials"] == 2 and tag["sweep"]["seconds"] > 0
        assert r["data_info"]["eval_size"] == 32  # the test set, whole
    assert "validation acc vs learning rate" in out and "tuned acc" in out  # the summary
    # the same command again resumes the study: no trial and no final run twice
    capsys.readouterr()
    assert main(["run", "--preset", preset_file(tmp_path), "--tune", "--tune-grid", "1e-4,1e-2",
                 "--method", "lora", "--seeds", "2", "--headless", "--runs-dir", str(runs)]) == 0
    assert len(records(runs)) == 4
    assert "already in the runs folder" in capsys.readouterr().out


def test_a_diverged_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    from faults import scale_loss

    from ftbench.engine.runner import run
    from ftbench.presets import expand, parse_preset_text
    from ftbench.tune.sweep import plan_sweep, run_sweep

    calls = {"n": 0}

    def first_diverges(spec, emit, cancel, **kwargs):
        calls["n"] += 1
        wrap = scale_loss(float("nan")) if calls["n"] == 1 else None
        return run(spec, emit, cancel, runs_dir=kwargs["runs_dir"], wrap_model=wrap)

    preset = parse_preset_text(PRESET.format(steps=2, extra=""))
    specs = [s for s in expand(preset) if s.method.name == "full"][:1]
    plan = plan_sweep(specs, TuneConfig(grid={"learning_rate": (1e-3, 1e-2)}), tmp_path)
    code = run_sweep(plan, str(tmp_path), stream=open(tmp_path / "log", "w"), run=first_diverges)
    assert code == 0
    got = records(tmp_path)
    trials = [r for r in got if r["spec"]["tune"]["role"] == "trial"]
    assert sorted(r["status"] for r in trials) == ["completed", "diverged"]
    completed = next(r for r in trials if r["status"] == "completed")
    final = next(r for r in got if r["spec"]["tune"]["role"] == "final")
    assert final["spec"]["learning_rate"] == completed["spec"]["learning_rate"]
    assert final["spec"]["tune"]["sweep"]["statuses"] == {"completed": 1, "diverged": 1}


def test_an_exploding_loss_counts_as_diverged() -> None:
    import threading

    from ftbench.engine.events import Step
    from ftbench.tune.sweep import Watch

    cancel = threading.Event()
    watch = Watch(trial=None, task="classification", cancel=cancel, forward=lambda e: None)
    for step, loss in ((1, 0.7), (2, 3.0), (3, 7.5)):
        watch(Step("r", step, 10, 0.1, loss, 1e-3, None, None, 1.0, None, None, None))
    assert watch.exploded == (3, 7.5) and cancel.is_set()


# --- two workers, one SQLite study ----------------------------------------------------------------

WORKER = """\
import sys, time
from pathlib import Path
from ftbench.engine.runner import run
from ftbench.presets import expand, load_preset
from ftbench.tune.space import TuneConfig
from ftbench.tune.sweep import plan_sweep, run_sweep

name, folder = sys.argv[1], Path(sys.argv[2])
flags = folder / "started"
flags.mkdir(exist_ok=True)

def held_run(spec, emit, cancel, **kwargs):
    finished = run(spec, emit, cancel, **kwargs)
    # hold the first trial until the other worker has run one, so both take a share
    if not (flags / name).exists():
        (flags / name).touch()
        deadline = time.time() + 60
        while len(list(flags.iterdir())) < 2 and time.time() < deadline:
            time.sleep(0.2)
    return finished

preset = load_preset(sys.argv[3])
specs = [s for s in expand(preset) if s.method.name == "lora"][:1]
plan = plan_sweep(specs, TuneConfig(study="shared", grid={"learning_rate": (1e-4, 3e-4, 1e-3, 3e-3)}),
                  folder)
sys.exit(run_sweep(plan, str(folder / name), trials_only=True, run=held_run))
"""


def test_two_workers_split_one_grid_and_run_every_point_exactly_once(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    preset = preset_file(tmp_path)
    procs = [subprocess.Popen([sys.executable, str(script), name, str(tmp_path), preset],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in ("a", "b")]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    by_worker = {name: records(tmp_path / name) for name in ("a", "b")}
    assert all(by_worker.values()), {k: len(v) for k, v in by_worker.items()}  # both took a share
    rates = sorted(r["spec"]["learning_rate"] for rs in by_worker.values() for r in rs)
    assert rates == [1e-4, 3e-4, 1e-3, 3e-3]  # every point, each once
    import optuna

    study = optuna.load_study(study_name="shared-lora", storage=f"sqlite:///{tmp_path / 'tune.db'}")
    assert sorted(t.params["learning_rate"] for t in study.trials) == rates
    assert {t.state.name for t in study.trials} == {"COMPLETE"}


def test_a_killed_workers_trial_is_run_again_and_finished_ones_are_kept(tmp_path: Path) -> None:
    """A trial left running by a dead worker (no heartbeat) frees its point; finished ones stay."""
    from ftbench.presets import expand, parse_preset_text
    from ftbench.tune import study as st
    from ftbench.tune.sweep import open_studies, plan_sweep

    preset = parse_preset_text(PRESET.format(steps=2, extra=""))
    specs = [s for s in expand(preset) if s.method.name == "lora"][:1]
    plan = plan_sweep(specs, TuneConfig(grid={"learning_rate": (1e-4, 1e-3, 1e-2)}), tmp_path)
    m = plan.methods[0]
    storage, studies = open_studies(plan)
    study = studies["lora"]
    done, params = st.claim(study, plan.storage_url, plan.config, m.space, m.points)
    done.set_user_attr("status", "completed")
    study.tell(done, 0.5)
    dead, dead_params = st.claim(study, plan.storage_url, plan.config, m.space, m.points)
    storage.record_heartbeat(dead._trial_id)  # then the worker dies: no more heartbeats
    # a new worker, with a short grace period, sees the stale trial
    fresh = st.open_storage(plan.storage_url, heartbeat_s=1, grace_s=1)
    import optuna
    import time

    time.sleep(2.5)
    again = optuna.load_study(study_name=m.study_name, storage=fresh)
    claimed = []
    while (got := st.claim(again, plan.storage_url, plan.config, m.space, m.points)) is not None:
        claimed.append(got[1]["learning_rate"])
        got[0].set_user_attr("status", "completed")
        again.tell(got[0], 0.4)
    assert (params["learning_rate"], dead_params["learning_rate"]) == (1e-4, 1e-3)  # points in order
    assert claimed == [1e-3, 1e-2]  # the dead worker's point again, then the one never started
    states = [(t.params.get("learning_rate"), t.state.name) for t in again.trials]
    assert states.count((1e-4, "COMPLETE")) == 1  # the finished trial is kept, not rerun
    assert (1e-3, "FAIL") in states


def test_help_lists_the_tune_flags(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--tune" in out and "--tune-storage" in out and "--trials-only" in out


def test_the_tui_queue_runs_each_trial_then_appends_the_finals(tmp_path: Path) -> None:
    """ftbench.tune.bridge: the start dialog's Tune box queues one run per free grid point and
    appends the finals when the last trial is done."""
    import threading

    from ftbench.presets import expand, parse_preset_text
    from ftbench.tune.bridge import queued_sweep

    preset = parse_preset_text(PRESET.format(steps=2, extra="[tune]\ngrid = { learning_rate = [1e-4, 1e-2] }\n"))
    specs = [s for s in expand(preset) if s.method.name == "lora"]
    added: list = []
    sweep = queued_sweep(preset, specs, tmp_path, add_runs=added.extend)
    queue = sweep.queue()
    assert [(s.tune["index"], s.tune["of"]) for s in queue] == [(1, 2), (2, 2)]
    for spec in queue:
        assert sweep(spec, lambda e: None, threading.Event(), runs_dir=tmp_path).record.status == "completed"
    assert [s.seed for s in added] == [7, 8] and all(s.tune["role"] == "final" for s in added)
    for spec in added:
        sweep(spec, lambda e: None, threading.Event(), runs_dir=tmp_path)
    roles = sorted(r["spec"]["tune"]["role"] for r in records(tmp_path))
    assert roles == ["final", "final", "trial", "trial"]


def test_tpe_from_the_preset_table_runs_its_trial_budget_within_the_range(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    extra = '[tune]\nsampler = "tpe"\ntrials = 2\ngrid = { learning_rate = [1e-4, 1e-2] }\n'
    code = main(["run", "--preset", preset_file(tmp_path, extra=extra), "--tune", "--method", "full",
                 "--trials-only", "--headless", "--runs-dir", str(runs)])
    assert code == 0
    rates = [r["spec"]["learning_rate"] for r in records(runs)]
    assert len(rates) == 2 and all(1e-4 <= lr <= 1e-2 for lr in rates)
    assert {r["spec"]["tune"]["sampler"] for r in records(runs)} == {"tpe"}


def test_the_median_pruner_stops_a_trial_behind_the_others() -> None:
    """Watch reports each eval's primary metric to the trial and cancels it when the pruner
    says so (two finished trials scored 0.8 at step 2; this one has 0.5 there)."""
    import threading

    import optuna

    from ftbench.engine.events import Eval
    from ftbench.tune.study import _pruner
    from ftbench.tune.sweep import Watch

    study = optuna.create_study(direction="maximize", pruner=_pruner(TuneConfig(pruner="median")))
    for value in (0.8, 0.82):
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values={2: value}))
    trial = study.ask()
    cancel = threading.Event()
    watch = Watch(trial, "classification", cancel, forward=lambda e: None)
    watch(Eval("r", 2, 0.5, {"accuracy": 0.5}, 0.1))
    assert watch.pruned_at == 2 and cancel.is_set()
    kept = study.ask()
    calm = threading.Event()
    Watch(kept, "classification", calm, forward=lambda e: None)(Eval("r", 2, 0.5, {"accuracy": 0.9}, 0.1))
    assert not calm.is_set()
