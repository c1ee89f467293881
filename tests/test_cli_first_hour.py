"""The mistakes a new user makes in the first hour get one clear line and exit 2 (issue 12).

Subprocesses, like a user at a shell; none of these trains (each is refused before training).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from ftbench.report.export import write_atomic
from ftbench.results.record import RunRecord
from ftbench.results.store import save_record

FIXTURES = Path(__file__).parent / "fixtures" / "runs"


def ftbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftbench.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, stdin=subprocess.DEVNULL)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ftbench: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_near_miss_preset_and_command_suggest_the_name() -> None:
    line = one_error_line(ftbench("run", "--preset", "quickstrat", "--headless"))
    assert line == "ftbench: error: unknown preset 'quickstrat' (did you mean 'quickstart'?)"
    line = one_error_line(ftbench("comapre"))
    assert "(did you mean 'compare'?)" in line
    line = one_error_line(ftbench("quickstart"))
    assert line.endswith("(to run a preset: ftbench run --preset quickstart)")


def test_method_names_are_case_insensitive_and_near_misses_named(tmp_path: Path) -> None:
    # LoRA is accepted (the run is then refused for another reason: a file as runs folder)
    blocker = tmp_path / "file"
    blocker.write_text("")
    line = one_error_line(ftbench("run", "--preset", "quickstart", "--method", "LoRA",
                                  "--headless", "--runs-dir", str(blocker / "runs")))
    assert "unknown method" not in line and "is a file" in line
    line = one_error_line(ftbench("run", "--preset", "quickstart", "--method", "lorra",
                                  "--headless"))
    assert "unknown method 'lorra' (did you mean 'lora'?)" in line


def test_preset_given_a_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text("")
    line = one_error_line(ftbench("run", "--preset", str(tmp_path), "--headless"))
    assert f"--preset {tmp_path} is a folder" in line and "mine.toml" in line


def test_unwritable_runs_dir_is_refused_before_training(tmp_path: Path) -> None:
    """Its parent is a file: found at once with exit 2, not after a whole run with exit 0."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    proc = ftbench("run", "--preset", "quickstart", "--max-steps", "1", "--headless",
                   "--runs-dir", str(blocker / "runs"))
    line = one_error_line(proc)
    assert line == (f"ftbench: error: cannot use runs folder {blocker / 'runs'}: {blocker} is a "
                    "file, not a folder")
    assert "[start]" not in proc.stdout  # nothing trained


def test_top_level_runs_dir_is_accepted(tmp_path: Path) -> None:
    proc = ftbench("--runs-dir", str(FIXTURES), "runs", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 16
    # a command's own --runs-dir wins over the top-level one
    proc = ftbench("--runs-dir", str(tmp_path / "nope"), "runs", "--runs-dir", str(FIXTURES))
    assert proc.returncode == 0, proc.stderr


def test_tui_without_a_terminal_says_so_instead_of_drawing() -> None:
    proc = ftbench("tui")
    line = one_error_line(proc)
    assert "the TUI needs a terminal" in line and "ftbench runs" in line
    assert "\x1b" not in proc.stdout + proc.stderr and proc.stdout == ""


def test_run_files_and_exports_respect_the_umask(tmp_path: Path) -> None:
    record = RunRecord(run_id="20261204T000000-x-full-s0-abc123", preset="x", method="full",
                       status="completed", created_at="2026-12-04T00:00:00+00:00", spec={})
    old = os.umask(0o022)
    try:
        path = save_record(record, tmp_path / "runs")
        exported = write_atomic(tmp_path / "out.csv", "a,b\n")
        os.umask(0o077)
        private = save_record(RunRecord(**{**record.__dict__,
                                           "run_id": "20261204T000000-x-full-s0-abc124"}),
                              tmp_path / "runs")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # was 0600 whatever the umask
    assert stat.S_IMODE(exported.stat().st_mode) == 0o644
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_doctor_says_what_it_is_checking(monkeypatch) -> None:
    from ftbench import doctor

    monkeypatch.setattr(doctor, "CHECKS", [doctor._bundles, doctor._presets])
    seen: list[str] = []
    checks = doctor.run_checks(seen.append)
    assert seen == ["looking for bundles… (1/2)", "checking the presets… (2/2)"]
    assert checks[0].name == "python"
