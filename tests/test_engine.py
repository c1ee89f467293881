"""The engine end to end on tiny random-init models, CPU, a few steps each."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from faults import scale_loss

from ftbench.engine.events import Eval, Log, RunFinished, RunStarted, Step
from ftbench.engine.runner import run
from ftbench.results.record import SCHEMA_VERSION
from ftbench.results.store import load_runs
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def tiny_spec(method: str = "full", model: str = "tiny-bert", steps: int = 6, **args: object) -> RunSpec:
    return RunSpec(
        preset="test",
        model=model,
        task="classification",
        data=DataSpec(name="synthetic-sentiment", train_size=96, eval_size=32),
        train=TrainParams(epochs=None, max_steps=steps, batch_size=16, learning_rate=1e-3,
                          max_length=32, eval_steps=3, logging_steps=1),
        method=MethodSpec(name=method, args=dict(args)),
        seed=7,
    )


class Collector:
    def __init__(self) -> None:
        self.events: list[object] = []

    def __call__(self, event: object) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_completed_run_measures_and_saves_everything(tmp_path: Path) -> None:
    events = Collector()
    finished = run(tiny_spec(), events, runs_dir=tmp_path)
    record = finished.record
    assert record.status == "completed", record.error
    assert finished.path and Path(finished.path).is_file()
    doc = json.loads(Path(finished.path).read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and doc["status"] == "completed"
    # events in order: started, steps, evals, finished
    assert isinstance(events.events[-1], RunFinished)
    started = events.of(RunStarted)
    assert len(started) == 1 and started[0].total_steps == 6
    steps = events.of(Step)
    assert [s.step for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(s.loss is not None and math.isfinite(s.loss) for s in steps)
    assert [e.step for e in events.of(Eval)] == [3, 6]
    # live tokens/s at every logging step: real (unpadded) tokens
    assert all(s.tokens_per_s is not None and s.tokens_per_s > 0 for s in steps)
    # (over the live window, at most max_length = 32 tokens per sample)
    assert all(s.tokens_per_s <= 32 * s.samples_per_s + 0.1 for s in steps)
    # metrics
    m = record.metrics
    assert set(m) >= {"accuracy", "precision", "recall", "f1", "confusion_matrix", "loss"}
    assert sum(map(sum, m["confusion_matrix"])) == 32
    assert 0.0 <= m["accuracy"] <= 1.0
    # measurements
    t = record.timing
    assert t["steps"] == 6 and t["train_samples"] == 96
    assert t["train_s"] > 0 and t["eval_s"] > 0 and t["samples_per_s"] > 0 and t["tokens_per_s"] > 0
    assert t["train_tokens"] <= 96 * 32
    assert record.memory["torch_peak_allocated_mb"] is None  # CPU: not invented
    assert record.memory["nvml_peak_used_mb"] is None
    assert record.memory["process_peak_rss_mb"] > 50
    assert record.params["trainable"] == record.params["total"]
    assert record.params["trainable_without_head"] < record.params["trainable"]
    assert [p["step"] for p in record.series["train"]] == [1, 2, 3, 4, 5, 6]
    assert [p["step"] for p in record.series["eval"]] == [3, 6]
    assert record.environment["device"] == "cpu" and record.environment["torch"]
    assert record.model_info["random_init"] is True
    assert "synthetic" in record.data_info["source"]


def test_cancel_saves_a_cancelled_record(tmp_path: Path) -> None:
    cancel = threading.Event()

    def stop_after_two(step: int) -> None:
        if step == 2:
            cancel.set()

    finished = run(tiny_spec(steps=50), cancel=cancel, runs_dir=tmp_path, on_step=stop_after_two)
    assert finished.record.status == "cancelled"
    assert finished.record.timing["steps"] == 2
    assert "cancelled at step 2 of 50" in finished.record.error
    assert [r.status for r in load_runs(tmp_path).records] == ["cancelled"]


def test_nan_loss_is_diverged(tmp_path: Path) -> None:
    events = Collector()
    finished = run(tiny_spec(), events, runs_dir=tmp_path, wrap_model=scale_loss(float("nan")))
    assert finished.record.status == "diverged"
    assert "step 1" in finished.record.error
    assert finished.record.timing["steps"] == 1
    assert any(isinstance(e, Log) and e.level == "error" for e in events.events)


def test_exception_mid_training_is_a_failed_record(tmp_path: Path) -> None:
    def boom(step: int) -> None:
        if step == 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    finished = run(tiny_spec(), runs_dir=tmp_path, on_step=boom)
    record = finished.record
    assert record.status == "failed"
    assert record.error.startswith("out of memory:") and "batch_size" in record.error
    assert record.timing["steps"] == 2 and len(record.series["train"]) == 2
    assert load_runs(tmp_path).records[0].status == "failed"


def test_unknown_model_folder_fails_cleanly(tmp_path: Path) -> None:
    finished = run(replace(tiny_spec(), model="./no/such/folder"), runs_dir=tmp_path)
    assert finished.record.status == "failed"
    assert "does not exist" in finished.record.error


def test_unwritable_runs_dir_falls_back_and_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    events = Collector()
    finished = run(tiny_spec(steps=2), events, runs_dir=blocker / "runs")
    assert finished.save_error and "instead" in finished.save_error
    assert finished.path and Path(finished.path).is_file()
    assert not (blocker / "runs").exists()


@pytest.mark.parametrize("model", ["tiny-distilbert", "tiny-roberta"])
def test_other_architectures_train(tmp_path: Path, model: str) -> None:
    finished = run(tiny_spec(model=model, steps=3), runs_dir=tmp_path)
    assert finished.record.status == "completed", finished.record.error


def test_tensorboard_logs_land_next_to_the_runs_and_scratch_is_removed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not a test dependency")
    import tempfile as _tf

    before = set(Path(_tf.gettempdir()).glob("ftbench-trainer-*"))
    for _ in range(2):
        finished = run(replace(tiny_spec(steps=2), report_to=("tensorboard",)), runs_dir=tmp_path)
        assert finished.record.status == "completed"
        folder = Path(finished.record.environment["tensorboard_dir"])
        assert folder.parent == tmp_path / "tensorboard" and list(folder.glob("events.out.tfevents*"))
    assert len(list((tmp_path / "tensorboard").iterdir())) == 2
    assert set(Path(_tf.gettempdir()).glob("ftbench-trainer-*")) <= before | set()


def test_trainer_scratch_folder_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile as _tf

    # a temp folder of this test's own: other processes' runs on the machine cannot show up in it
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(_tf, "tempdir", str(scratch))
    made = []
    real_mkdtemp = _tf.mkdtemp
    monkeypatch.setattr(_tf, "mkdtemp", lambda *a, **k: made.append(real_mkdtemp(*a, **k)) or made[-1])
    run(tiny_spec(steps=1), runs_dir=tmp_path / "runs")
    assert any(Path(m).name.startswith("ftbench-trainer-") for m in made)  # the run did make one
    assert not list(scratch.glob("ftbench-trainer-*"))


def test_steady_state_figures_and_moving_window_live_rate(tmp_path: Path) -> None:
    spec = replace(tiny_spec(steps=30), train=replace(tiny_spec().train, max_steps=30,
                                                      logging_steps=2, eval_steps=None))
    events = Collector()
    record = run(spec, events, runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    t = record.timing
    assert t["warmup_steps"] == 10 and t["steady_steps"] == 20      # 10 % of 30, at least 10
    assert 0 < t["steady_s"] < t["train_s"]
    points = {p["step"]: p for p in record.series["train"]}
    first, last = points[10], points[30]
    assert t["steady_samples_per_s"] == pytest.approx(
        (last["samples"] - first["samples"]) / (last["t"] - first["t"]), rel=1e-3)
    assert t["steady_tokens_per_s"] == pytest.approx(
        (last["tokens"] - first["tokens"]) / (last["t"] - first["t"]), rel=1e-3)
    assert last["samples"] == 30 * 16 and last["tokens"] == t["train_tokens"]
    # the live rate at a logging step covers the last 5 intervals, not the run since step 0
    step30 = points[30]
    window = (step30["samples"] - points[20]["samples"]) / (step30["t"] - points[20]["t"])
    assert step30["samples_per_s"] == pytest.approx(window, rel=1e-2)
    assert events.of(Step)[-1].samples_per_s == step30["samples_per_s"]


def test_short_run_has_no_steady_window(tmp_path: Path) -> None:
    record = run(tiny_spec(steps=6), runs_dir=tmp_path).record
    assert record.status == "completed"
    assert record.timing["steady_samples_per_s"] is None and record.timing["warmup_steps"] is None
    assert record.timing["samples_per_s"] > 0


def test_steady_window_math() -> None:
    from ftbench.engine.steady import steady_window, warmup_steps

    assert warmup_steps(50) == 10 and warmup_steps(500) == 50 and warmup_steps(50, compiled=True) == 20
    pts = [{"step": s, "t": 1.0 + 0.5 * s, "samples": 8 * s, "tokens": 100 * s} for s in (5, 10, 15, 20)]
    pts[0]["t"] = 9.0                                  # a slow first interval (warm-up) is left out
    w = steady_window(pts, 10)
    assert w["warmup_steps"] == 10 and w["steady_steps"] == 10 and w["steady_s"] == 5.0
    assert w["steady_samples_per_s"] == 16.0 and w["steady_tokens_per_s"] == 200.0
    assert steady_window(pts, 20) is None and steady_window([], 0) is None
