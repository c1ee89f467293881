"""Reliability: `ftbench run --headless` under Ctrl+C, SIGTERM and faults (issue 6).

In-process through `ftbench.cli.main` (the real signal handlers are installed; the signal is
raised from inside a training step through the engine's `on_step`), so each case costs a tiny run,
not a Python start-up. tests/test_cli.py covers the same signals on a real subprocess.
Exit codes: 0 completed, 1 failed / diverged / not saved anywhere, 2 usage, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from faults import scale_loss

from ftbench.cli import main
from ftbench.engine import runner
from ftbench.results.store import load_runs

CATEGORY = "signals & exit codes"

PRESET = """
title = "headless faults"
description = "two tiny runs"
reproduces = "tests"
model = "tiny-bert"
task = "classification"
seed = 5

[data]
name = "synthetic-sentiment"
train_size = 48
eval_size = 16

[train]
max_steps = 3
batch_size = 16
max_length = 24
learning_rate = 1e-3
logging_steps = 1

[[methods]]
name = "head-only"

[[methods]]
name = "bitfit"
"""


pytestmark = pytest.mark.usefixtures("quick_cpu_runs")  # tests/reliability_tally.py


@pytest.fixture
def preset(tmp_path: Path) -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(PRESET)
    return path


Engine = dict[str, Any]  # keyword arguments for the engine's `run`: its collaborators


def with_engine(monkeypatch: pytest.MonkeyPatch, make: Callable[[], Engine]) -> None:
    """Every run the headless front end starts gets fresh fault-injecting collaborators."""
    real = runner.run

    def run(*args: Any, **kwargs: Any) -> Any:
        return real(*args, **make(), **kwargs)

    monkeypatch.setattr(runner, "run", run)


def headless(tally: Any, preset: Path, runs: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest was started in the background
    with tally.case(CATEGORY):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["run", "--preset", str(preset), "--headless", "--runs-dir", str(runs), *extra])
    text = out.getvalue() + err.getvalue()
    tally.check_output(CATEGORY, text)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    return code, out.getvalue(), err.getvalue()


def raise_signal_at(step: int, sig: int, times: int = 1) -> Callable[[], Engine]:
    """Deliver ``sig`` ``times`` times inside training step ``step`` (as a user pressing keys)."""
    def make() -> Engine:
        def on_step(n: int) -> None:
            if n == step:
                for _ in range(times):
                    signal.raise_signal(sig)
        return {"on_step": on_step}
    return make


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_cancels_saves_and_exits_130(tally: Any, preset: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, sig: int) -> None:
    with_engine(monkeypatch, raise_signal_at(2, sig))
    runs = tmp_path / "runs"
    code, out, _ = headless(tally, preset, runs)
    assert code == 130, out
    loaded = load_runs(runs)
    assert [r.status for r in loaded.records] == ["cancelled"]  # the queue stopped after it
    assert loaded.records[0].timing["steps"] == 2 and not loaded.problems
    assert "cancelling" in out and "status=cancelled" in out
    tally.check_saved(CATEGORY, runs, loaded.records)


def test_second_ctrl_c_aborts_at_once_and_still_saves(tally: Any, preset: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with_engine(monkeypatch, raise_signal_at(2, signal.SIGINT, times=2))
    runs = tmp_path / "runs"
    code, _, _ = headless(tally, preset, runs)
    assert code == 130
    [record] = load_runs(runs).records
    assert record.status == "cancelled" and record.error == "cancelled at step 1 of 3"
    tally.check_saved(CATEGORY, runs, [record])


def test_sigterm_while_json_output_keeps_stdout_parseable(tally: Any, preset: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with_engine(monkeypatch, raise_signal_at(1, signal.SIGTERM))
    runs = tmp_path / "runs"
    code, out, _ = headless(tally, preset, runs, "--json")
    payload = json.loads(out)
    assert code == 130 and payload["exit_code"] == 130 and payload["interrupted"] is True
    assert [r["status"] for r in payload["runs"]] == ["cancelled"]
    assert payload["runs"][0]["path"] == str(runs / f"{payload['runs'][0]['run_id']}.json")


def test_failure_exits_1_and_the_queue_goes_on(tally: Any, preset: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import torch as _torch

    first = [True]

    def make() -> Engine:
        oom = first[0]
        first[0] = False

        def on_step(n: int) -> None:
            if oom and n == 2:
                raise _torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
        return {"on_step": on_step}

    with_engine(monkeypatch, make)
    runs = tmp_path / "runs"
    code, out, _ = headless(tally, preset, runs)
    assert code == 1
    loaded = load_runs(runs)
    assert sorted(r.status for r in loaded.records) == ["completed", "failed"]
    assert "out of memory" in out
    tally.check_saved(CATEGORY, runs, loaded.records)


def test_diverged_exits_1(tally: Any, preset: Path, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    with_engine(monkeypatch, lambda: {"wrap_model": scale_loss(float("nan"))})
    runs = tmp_path / "runs"
    code, _, _ = headless(tally, preset, runs, "--method", "head-only")
    assert code == 1
    assert [r.status for r in load_runs(runs).records] == ["diverged"]


def test_unwritable_runs_folder_says_where_the_record_went(tally: Any, preset: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))

    def refuse(record: Any, folder: Any) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied", str(folder))

    with_engine(monkeypatch, lambda: {"saver": refuse})
    runs = tmp_path / "runs"
    code, out, _ = headless(tally, preset, runs, "--method", "head-only")
    assert code == 0  # completed, and saved (elsewhere, said in one line)
    fallback = tmp / "ftbench-unsaved"
    [saved] = list(fallback.iterdir())
    assert f"record saved to {saved} instead" in out
    assert not runs.exists()


def test_nowhere_to_save_prints_the_record_and_exits_1(tally: Any, preset: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")

    def refuse(record: Any, folder: Any) -> Path:
        monkeypatch.setattr(tempfile, "tempdir", str(blocker / "tmp"))
        raise OSError(errno.ENOSPC, "No space left on device")

    with_engine(monkeypatch, lambda: {"saver": refuse})
    runs = tmp_path / "runs"
    code, out, _ = headless(tally, preset, runs, "--method", "head-only")
    assert code == 1
    assert "could not be saved" in out
    start = out.index("its record:\n") + len("its record:\n")
    record, _ = json.JSONDecoder().raw_decode(out[start:])
    assert record["status"] == "completed" and record["metrics"]["accuracy"] is not None


def test_bad_run_id_is_refused_before_training(tally: Any, tmp_path: Path) -> None:
    from ftbench.presets import expand, parse_preset_text
    from ftbench.results.store import StoreError

    [spec, _] = expand(parse_preset_text(PRESET))
    tally.add(CATEGORY)
    with pytest.raises(StoreError, match="invalid run id"):
        runner.run(spec, runs_dir=tmp_path / "runs", run_id="../../outside")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outside.json").exists()
