"""The `ftbench` command end to end, in subprocesses: exit codes, output modes, Ctrl+C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftbench.results.store import load_runs

TINY = """
title = "tiny"
description = "tiny CLI test preset"
reproduces = "tests"
model = "tiny-bert"
task = "classification"
seeds = 1

[data]
name = "synthetic-sentiment"
train_size = {train}
eval_size = 32

[train]
epochs = 1
batch_size = 8
learning_rate = 1e-3
max_length = 32
logging_steps = 1

[[methods]]
name = "lora"

[[methods]]
name = "head-only"
"""


def ftbench(*args: str, env: dict[str, str] | None = None, timeout: float = 240,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env or os.environ.copy(), cwd=cwd)


@pytest.fixture
def tiny_preset(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{train}", "64"))
    return path


def test_headless_run_plain_lines_json_and_exit_0(tmp_path: Path, tiny_preset: Path) -> None:
    runs = tmp_path / "runs"
    proc = ftbench("run", "--preset", str(tiny_preset), "--headless", "--max-steps", "3",
                   "--runs-dir", str(runs), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["exit_code"] == 0
    assert [r["method"] for r in payload["runs"]] == ["lora", "head-only"]
    assert all(r["status"] == "completed" for r in payload["runs"])
    # not a TTY: one plain line per logging step, no Rich live display
    steps = [line for line in proc.stderr.splitlines() if line.startswith("[step]")]
    assert len(steps) == 6 and "\x1b[" not in proc.stderr
    assert "Traceback" not in proc.stderr
    loaded = load_runs(runs)
    assert len(loaded.records) == 2 and not loaded.problems


def test_failed_run_exits_1_and_is_saved(tmp_path: Path, tiny_preset: Path) -> None:
    runs = tmp_path / "runs"
    proc = ftbench("run", "--preset", str(tiny_preset), "--headless", "--max-steps", "2",
                   "--model", "tiny-distilbert", "--method", "prefix", "--runs-dir", str(runs))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    records = load_runs(runs).records
    assert [r.status for r in records] == ["failed"]
    assert "prefix" in (records[0].error or "").lower()


@pytest.mark.parametrize("args, needle", [
    (["run", "--preset", "no-such-preset", "--headless"], "no-such-preset"),
    (["run", "--preset", "quickstart", "--headless", "--method", "magic"], "unknown method 'magic'"),
    (["run", "--preset", "quickstart", "--headless", "--max-steps", "0"], "--max-steps"),
    (["run", "--preset", "quickstart", "--headless", "--seeds", "x"], "invalid int value"),
    (["run", "--preset", "quickstart", "--headless", "--dataset", "nope"], "unknown dataset 'nope'"),
    (["frobnicate"], "invalid choice"),
    (["run", "--preset", "quickstart", "--headless", "--report-to", "nosuchtracker"], "unknown tracker"),
])
def test_usage_and_preset_errors_exit_2_with_one_line(args: list[str], needle: str) -> None:
    proc = ftbench(*args)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("ftbench: error")] != []


def test_broken_preset_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("{train}", "64").replace("batch_size = 8", "batch_size = -8"))
    proc = ftbench("run", "--preset", str(bad), "--headless")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "bad.toml" in line and "batch_size" in line


def test_hub_preset_without_network_fails_fast_with_offline_hint(tmp_path: Path) -> None:
    env = os.environ.copy()
    env["HF_HUB_OFFLINE"] = "1"
    started = time.monotonic()
    proc = ftbench("run", "--preset", "bert-sentiment", "--headless", "--runs-dir",
                   str(tmp_path), env=env)
    assert proc.returncode == 2
    assert "--offline" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 30
    assert not list(tmp_path.iterdir())


def test_ctrl_c_saves_the_run_in_flight_as_cancelled_and_exits_130(tmp_path: Path) -> None:
    preset = tmp_path / "long.toml"
    preset.write_text(TINY.replace("{train}", "4000"))
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "ftbench.cli", "run", "--preset", str(preset),
                             "--headless", "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[step]"):
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(seen) + rest
    assert proc.returncode == 130, output
    assert "Traceback" not in output
    records = load_runs(runs).records
    assert [r.status for r in records] == ["cancelled"]  # the queue stopped: head-only never ran
    assert not list(runs.glob("*.tmp*"))


def test_sigterm_behaves_like_ctrl_c(tmp_path: Path) -> None:
    preset = tmp_path / "long.toml"
    preset.write_text(TINY.replace("{train}", "4000"))
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "ftbench.cli", "run", "--preset", str(preset),
                             "--headless", "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[step]"):
            break
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert [r.status for r in load_runs(runs).records] == ["cancelled"]


def test_runs_lists_and_reports_corrupt_files(tmp_path: Path) -> None:
    fixtures = Path(__file__).parent / "fixtures" / "runs"
    runs = tmp_path / "runs"
    runs.mkdir()
    for path in sorted(fixtures.glob("*.json"))[:3]:
        (runs / path.name).write_text(path.read_text())
    (runs / "broken.json").write_text('{"schema_version": 1, "run_id": ')
    proc = ftbench("runs", "--runs-dir", str(runs))
    assert proc.returncode == 0
    assert "broken.json" in proc.stderr and "Traceback" not in proc.stderr
    proc = ftbench("runs", "--runs-dir", str(runs), "--json")
    assert len(json.loads(proc.stdout)) == 3


def test_presets_lists_every_builtin() -> None:
    proc = ftbench("presets", "--json")
    assert proc.returncode == 0
    names = {row["name"] for row in json.loads(proc.stdout)}
    assert {"quickstart", "bert-synthetic", "lora-qa", "bert-sentiment", "peft-synthetic",
            "imdb-strategies", "distilbert-sentiment140", "roberta-imdb-peft"} <= names


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["presets"], ["runs"]])
def test_light_commands_never_import_torch(args: list[str], tmp_path: Path) -> None:
    code = (f"import sys\nfrom ftbench.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'datasets', 'optuna', 'sqlalchemy')\n"
            "         if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:] + proc.stderr[-500:]


def test_doctor_reports_every_check_and_exits_0(tmp_path: Path) -> None:
    env = os.environ.copy()
    env["HF_HUB_OFFLINE"] = "1"
    proc = ftbench("doctor", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    for name in ("python", "torch", "CUDA", "NVML", "bitsandbytes (QLoRA)", "Hugging Face hub",
                 "MiniLM-L6 model (minilm-l6)", "SQuAD 1.1 cache", "preset quickstart"):
        assert name in rows, sorted(rows)
    assert rows["preset quickstart"]["detail"] == "offline"
    assert "unreachable" in rows["Hugging Face hub"]["detail"] or "offline" in rows["Hugging Face hub"]["detail"]
    assert "Traceback" not in proc.stderr


def test_runs_fits_80_columns_with_short_ids_that_compare_accepts(tmp_path: Path) -> None:
    fixtures = Path(__file__).parent / "fixtures" / "runs"
    runs = tmp_path / "runs"
    runs.mkdir()
    for path in fixtures.glob("*.json"):
        (runs / path.name).write_text(path.read_text())
    env = {**os.environ, "COLUMNS": "80"}
    env.pop("NO_COLOR", None)
    proc = ftbench("runs", "--runs-dir", str(runs), env=env)  # piped: no terminal
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    # one line per run: the header, the rule, 16 runs, the title and the caption
    rows = [line for line in lines if line[:6].isalnum() and line[6:7] == " "]
    assert len(rows) == 16, proc.stdout
    first = next(line for line in rows if line.startswith("000001 "))
    assert first.split()[:9] == ["000001", "11-28", "08:02", "quickstart", "full", "0",
                                 "completed", "50", "acc"]
    assert "steps" in lines[1] and "20261128T080200" not in proc.stdout
    # the short id is enough for compare; --json keeps the full id
    proc = ftbench("compare", "000004", "--runs-dir", str(runs), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"][0]["run_id"] == "20261128T080800-quickstart-lora-s0-000004"
    proc = ftbench("runs", "--runs-dir", str(runs), "--json")
    assert "20261128T080200-quickstart-full-s0-000001" in {r["run_id"] for r in json.loads(proc.stdout)}


def test_runs_on_a_missing_folder_exits_2_like_compare(tmp_path: Path) -> None:
    for command in ("runs", "compare"):
        proc = ftbench(command, "--runs-dir", str(tmp_path / "nope"))
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.startswith("ftbench: error: no runs folder") and "Traceback" not in proc.stderr
