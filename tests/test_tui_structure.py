"""The TUI's wiring: every binding has an id, every screen's palette entries name real actions,
the controller (not the app) runs the queue and saves a failed record through the engine."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding

import ftbench.tui
from ftbench.engine.runner import save_failed
from ftbench.results.store import load_runs
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams


def _tui_classes() -> list[type]:
    out = []
    for info in pkgutil.walk_packages(ftbench.tui.__path__, "ftbench.tui."):
        module = importlib.import_module(info.name)
        out += [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    return out


def test_every_binding_has_an_id() -> None:
    seen = 0
    for cls in _tui_classes():
        for binding in cls.__dict__.get("BINDINGS", []):
            assert isinstance(binding, Binding), f"{cls.__name__}: {binding!r} is not a Binding"
            assert binding.id, f"{cls.__name__}: binding {binding.key!r} has no id"
            seen += 1
    assert seen >= 20


def test_screen_palette_entries_name_real_actions() -> None:
    from ftbench.tui.commands import ScreenCommands

    screens = [c for c in _tui_classes() if "PALETTE" in c.__dict__]
    assert {c.__name__ for c in screens} >= {"PresetsScreen", "LiveScreen", "RunsScreen", "CompareScreen"}
    for cls in screens:
        assert ScreenCommands in cls.COMMANDS
        for title, help_text, action in cls.PALETTE:
            assert callable(getattr(cls, f"action_{action}", None)), (cls.__name__, action)
            assert title and help_text


def _spec() -> RunSpec:
    return RunSpec(preset="p", model="tiny-bert", task="classification", data=DataSpec(name="imdb"),
                   train=TrainParams(), method=MethodSpec("lora"), seed=3)


def test_the_engine_saves_a_failed_record(tmp_path: Path) -> None:
    events: list[Any] = []
    finished = save_failed(_spec(), "could not start: reason", runs_dir=tmp_path, emit=events.append)
    (record,) = load_runs(tmp_path).records
    assert record.status == "failed" and record.error == "could not start: reason"
    assert record.method == "lora" and record.seed == 3 and record.spec["seed"] == 3
    assert finished.path is not None and Path(finished.path).parent == tmp_path
    assert events == [finished]


def test_the_controller_saves_the_run_in_progress_when_the_worker_fails(tmp_path: Path) -> None:
    from ftbench.tui.controller import TrainingController
    from ftbench.tui.session import RunQueue

    class FakeApp:
        runs_dir = tmp_path
        saver = None

    controller = TrainingController(FakeApp())  # type: ignore[arg-type]
    spec = _spec()
    controller.queue = RunQueue("p", [spec, spec])
    controller.queue.take_next()
    assert controller.training
    text = controller.failed(RuntimeError("boom\nsecond line"))
    assert text == "RuntimeError: boom second line"
    assert [i.status for i in controller.queue] == ["failed", "skipped"]
    (record,) = load_runs(tmp_path).records
    assert record.error == text and not controller.training


@pytest.mark.parametrize("module", ["ftbench.tui.app"])
def test_the_app_has_no_record_writer(module: str) -> None:
    source = inspect.getsource(importlib.import_module(module))
    assert "save_record" not in source and "RunRecord(" not in source
