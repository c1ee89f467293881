"""Snapshots of a causal-LM (SFT) run in the TUI: the live view while it trains (base model
measured, eval chart at the base score), the live view when it has finished (base -> tuned on
the progress line), and the run detail with base -> tuned, forgetting and sample generations.

Live states go through the app's real message path with made-up, deterministic engine events;
the finished run and the detail view read a real record (SmolLM2-135M, LoRA, sft-quickstart,
tests/fixtures/sft_detail). Update with ``--snapshot-update`` and look at the SVGs first.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from ftbench.presets import parse_preset_text
from ftbench.tui.app import FtbenchApp
from ftbench.tui.widgets.memory_panel import Machine
from tui_helpers import open_live_queue, settle, still_clock  # noqa: F401  (autouse fixture)

DETAIL = Path(__file__).parent / "fixtures" / "sft_detail"
CPU = Machine(False, reason="NVML unavailable")
SMALL, LARGE = (80, 24), (120, 40)

SFT_PRESET = """
title = "SFT quickstart: SmolLM2-135M on generated word problems (full, LoRA, QLoRA)"
description = "SmolLM2-135M-Instruct on generated GSM8K-style problems: full, LoRA, QLoRA."
reproduces = "ftbench's own decoder smoke benchmark (no write-up)"
model = "smollm2-135m"
task = "causal-lm"
seed = 42

[data]
name = "math-problems"
train_size = 1200
eval_size = 100

[train]
max_steps = 150
batch_size = 8
max_length = 160
precision = "bf16"
logging_steps = 10

[[methods]]
name = "lora"
args = { r = 16, alpha = 32, target_modules = "all-linear" }

[[methods]]
name = "qlora"
args = { r = 16, alpha = 32, target_modules = "all-linear" }
"""



@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "runs"
    folder.mkdir()
    for path in DETAIL.glob("*.json"):
        shutil.copy(path, folder / path.name)
    return Path("runs")


def app_for(runs: Path) -> FtbenchApp:
    preset = parse_preset_text(SFT_PRESET, source="<sft-quickstart>", default_name="sft-quickstart")
    return FtbenchApp(runs, presets=[preset], machine=CPU, cursor_blink=False)


def detail_record() -> Any:
    from ftbench.results.store import load_file

    (path,) = DETAIL.glob("*.json")
    return load_file(path)


def sft_events(run_id: str, upto: int, total: int = 150, finished: bool = False) -> list[Any]:
    """A causal-LM run up to step ``upto``, as the engine emits it: the base model measured
    first (an evaluation at step 0), training with logging steps, and when ``finished`` the
    tuned model's measurement at the last step. The measurements are the fixture record's."""
    from ftbench.engine.events import Eval, EvalProgress, Log, RunStarted, Step

    record = detail_record()
    params = {k: record.params[k] for k in ("trainable", "total", "trainable_without_head")}
    keys = ("response_loss", "perplexity", "exact_match", "answered", "general_loss")
    base = {k: record.baseline[k] for k in keys} | {"stage": "base"}
    base_s = record.timing["base_eval_s"]
    events: list[Any] = [
        Log(run_id, "info", "sft-quickstart · lora · smollm2-135m · math-problems · seed 42"),
        Log(run_id, "info", "measuring the base model before training"),
        EvalProgress(run_id, 0, 0, 9, 0.0),
        EvalProgress(run_id, 0, 5, 9, base_s / 2),
        Eval(run_id, 0, 0.0, base, base_s),
        Log(run_id, "info", f"base: exact match {base['exact_match']:.3f}, perplexity "
                            f"{base['perplexity']:.3f} ({base_s:.1f}s)"),
        RunStarted(run_id, "sft-quickstart", "lora", "smollm2-135m", "math-problems", 42, total,
                   params, "cpu", "generated"),
    ]
    for step in range(10, upto + 1, 10):
        loss = 0.35 + 0.85 * math.exp(-step / 25) + 0.02 * math.sin(step * 1.3)
        elapsed = step * 1.31
        events.append(Step(run_id, step, total, round(step / total * 0.999, 4), round(loss, 4),
                           1e-3 * (1 - step / total), 6.1, 612.0, elapsed,
                           (total - step) * 1.31, None, 2910.0 + 2.0 * step))
    if finished:
        tuned = {k: record.metrics[k] for k in (*keys, "forgetting")} | {"stage": "tuned"}
        events.append(Eval(run_id, total, 1.0, tuned, record.timing["eval_s"]))
    return events


async def show_sft(pilot: Any, finished: bool) -> None:
    from ftbench.engine.events import RunFinished

    app = pilot.app
    queue = await open_live_queue(pilot)
    item, _ = queue.take_next()
    emit = app._emitter(item)
    for event in sft_events("lora-run", 150 if finished else 80, finished=finished):
        emit(event)
    if finished:  # as the training worker does
        record = detail_record()
        app.controller.ended(queue, item, RunFinished(record, f"runs/{record.run_id}.json"))
        queue.stop()
        queue.take_next()
        app.controller.done(queue)
    await settle(pilot)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_sft_live_running(snap_compare: Any, runs: Path, size: tuple[int, int]) -> None:
    async def scene(pilot: Any) -> None:
        await show_sft(pilot, finished=False)

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=size)


def test_sft_live_finished(snap_compare: Any, runs: Path) -> None:
    async def scene(pilot: Any) -> None:
        await show_sft(pilot, finished=True)

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=LARGE)


@pytest.mark.parametrize("size", [LARGE, (120, 80)], ids=["120x40", "120x80"])
def test_sft_run_detail_with_sample_generations(snap_compare: Any, runs: Path,
                                                size: tuple[int, int]) -> None:
    async def scene(pilot: Any) -> None:
        pilot.app.open_run(detail_record().run_id)
        await pilot.pause(0.4)  # the curves draw on their timer

    assert snap_compare(app_for(runs), run_before=scene, terminal_size=size)


def test_the_detail_view_shows_what_the_record_holds() -> None:
    """The snapshot's content, asserted in words: base -> tuned and every kept sample."""
    from rich.console import Console

    from ftbench.tui.sft_view import base_to_tuned, comparison_table, samples_table

    record = detail_record()
    console = Console(width=160, record=True, color_system=None)
    console.print(comparison_table(record))
    console.print(samples_table(record))
    text = console.export_text()
    base, tuned = record.baseline["exact_match"], record.metrics["exact_match"]
    assert f"{base:.3f}" in text and f"{tuned:.3f}" in text and f"{tuned - base:+.3f}" in text
    assert "forgetting" in text and "general-text loss" in text
    for sample in record.samples:
        assert sample["prompt"][:40] in text.replace("\n", " ") or sample["prompt"][:20] in text
    assert base_to_tuned(record) == f"EM {base:.3f} → {tuned:.3f} · forgetting " \
        f"{record.metrics['forgetting']:+.3f}"
