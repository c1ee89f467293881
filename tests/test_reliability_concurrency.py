"""Reliability: two ftbench processes writing to the same runs folder at once (issue 6).

No collision (a run id names one run), no loss (every record each process saved is there and
parses), no overwrite (a second writer of the same id is refused, the first file is kept), and
no temporary file left behind. Subprocesses start together on a barrier file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from ftbench.results.store import load_runs

CATEGORY = "concurrency"

WRITER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from ftbench.results.record import RunRecord
    from ftbench.results.store import StoreError, new_run_id, save_record

    folder, tag, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    go, same = Path(sys.argv[4]), sys.argv[5] == "same"
    while not go.exists():
        time.sleep(0.005)
    results = []
    for i in range(count):
        run_id = f"20270101T000000-race-{i:04d}" if same else new_run_id("race", "full", 0)
        record = RunRecord(run_id=run_id, preset="race", method="full", status="completed",
                           created_at="2027-01-01T00:00:00+00:00", spec={"writer": tag, "i": i})
        try:
            save_record(record, folder)
            results.append([run_id, True])
        except StoreError as exc:
            results.append([run_id, str(exc)])
    print(json.dumps(results))
""")


def start_writers(tmp_path: Path, runs: Path, count: int, same: bool) -> list[subprocess.Popen[str]]:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(runs), tag, str(count), str(go),
                               "same" if same else "unique"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("A", "B")]
    time.sleep(0.5)  # both interpreters up and waiting (they only import ftbench.results)
    go.write_text("go")
    return procs


def results_of(procs: list[subprocess.Popen[str]]) -> list[list[Any]]:
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        assert "Traceback" not in stderr
        out.append(json.loads(stdout))
    return out


def test_two_writers_unique_ids_lose_nothing(tally: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tally.add(CATEGORY)
    with tally.guard(CATEGORY):
        a, b = results_of(start_writers(tmp_path, runs, 250, same=False))
    assert all(ok is True for _, ok in a + b)
    ids = [run_id for run_id, _ in a + b]
    assert len(set(ids)) == 500  # same preset, method, seed and second: still distinct ids
    loaded = load_runs(runs)
    assert not loaded.problems
    assert {r.run_id for r in loaded.records} == set(ids)
    by_id = {r.run_id: r.spec["writer"] for r in loaded.records}
    assert sorted(by_id[i] for i, _ in a) == ["A"] * 250
    tally.check_no_partial(CATEGORY, runs)


def test_two_writers_same_ids_never_overwrite(tally: Any, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tally.add(CATEGORY)
    with tally.guard(CATEGORY):
        a, b = results_of(start_writers(tmp_path, runs, 150, same=True))
    loaded = load_runs(runs)
    assert not loaded.problems and len(loaded.records) == 150
    for (run_id, ok_a), (_, ok_b) in zip(a, b):
        assert (ok_a is True) != (ok_b is True), (run_id, ok_a, ok_b)  # exactly one writer won
        refused = ok_b if ok_a is True else ok_a
        assert "already exists; not overwriting" in refused
    winners = {run_id: "A" if ok is True else "B" for run_id, ok in a}
    for record in loaded.records:  # the file on disk is the winner's, whole
        assert record.spec["writer"] == winners[record.run_id]
    tally.check_no_partial(CATEGORY, runs)


PRESET = """
title = "race"
description = "two processes, one runs folder"
reproduces = "tests"
model = "tiny-bert"
task = "classification"
seeds = 2

[data]
name = "synthetic-sentiment"
train_size = 16
eval_size = 16

[train]
max_steps = 1
batch_size = 16
max_length = 16
logging_steps = 1

[[methods]]
name = "head-only"
"""


def test_two_ftbench_processes_share_a_runs_folder(tally: Any, tmp_path: Path,
                                                   quick_cpu_runs: None) -> None:
    """A real `ftbench run --headless` process, and this process running the same preset into
    the same folder again and again until that one has finished: same seeds, same second."""
    import contextlib
    import io

    from ftbench.cli import main

    preset = tmp_path / "race.toml"
    preset.write_text(PRESET)
    runs = tmp_path / "runs"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    tally.add(CATEGORY)
    proc = subprocess.Popen([sys.executable, "-m", "ftbench.cli", "run", "--preset", str(preset),
                             "--headless", "--runs-dir", str(runs), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # its torch is loaded and its first run is training: now race it
        seen.append(line)
        if line.startswith("[start]"):
            break
    mine: list[dict[str, Any]] = []
    while proc.poll() is None and len(mine) < 12:
        out = io.StringIO()
        with tally.guard(CATEGORY), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(io.StringIO()):
            assert main(["run", "--preset", str(preset), "--headless", "--runs-dir", str(runs),
                         "--json"]) == 0
        mine.extend(json.loads(out.getvalue())["runs"])
    stdout, stderr = proc.communicate(timeout=300)
    stderr = "".join(seen) + stderr
    tally.check_output(CATEGORY, stdout + stderr)
    assert mine, "the two processes did not overlap"
    assert proc.returncode == 0, stderr[-2000:]
    theirs = json.loads(stdout)["runs"]
    returned = {r["run_id"]: r for r in mine + theirs}
    assert len(returned) == len(mine) + 2 and all(r["save_error"] is None for r in returned.values())
    loaded = load_runs(runs)
    assert not loaded.problems
    assert {r.run_id for r in loaded.records} == set(returned)
    for record in loaded.records:
        assert record.status == "completed"
        assert record.timing == returned[record.run_id]["timing"]
    tally.check_no_partial(CATEGORY, runs)
