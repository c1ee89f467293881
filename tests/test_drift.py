"""`.ci/run --latest` (.ci/drift.py): reading the lock and pip freeze, and pytest's JUnit report."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("drift", ROOT / ".ci" / "drift.py")
drift = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(drift)


def test_pins_read_a_lock_and_a_freeze_alike():
    text = "# comment\ntorch==2.13.0+cpu\nPyYAML==6.0.4  # why\n-e git+https://x#egg=ftbench\ntyping_extensions==4.16.0\n\n"
    assert drift.pins(text) == {"torch": "2.13.0", "pyyaml": "6.0.4", "typing-extensions": "4.16.0"}


def test_changes_list_upgrades_additions_and_removals_by_name():
    locked = {"peft": "0.21.2", "torch": "2.13.0", "old": "1.0"}
    resolved = {"peft": "0.22.0", "torch": "2.13.0", "new": "2.0"}
    assert drift.changes(locked, resolved) == [("new", None, "2.0"), ("old", "1.0", None),
                                               ("peft", "0.21.2", "0.22.0")]


def test_failed_tests_are_node_ids_pytest_accepts(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('a', ['bert', 'roberta'])\n"
        "def test_p(a):\n    assert a == 'bert'\n"
        "class TestK:\n    def test_m(self):\n        raise RuntimeError\n"
        "def test_ok():\n    pass\n")
    report = tmp_path / "r.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    "tests/test_x.py"], cwd=tmp_path, capture_output=True)
    failed = drift.failed_tests(report.read_text())
    assert failed == ["tests/test_x.py::test_p[roberta]", "tests/test_x.py::TestK::test_m"]
    again = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *failed],
                           cwd=tmp_path, capture_output=True, text=True)
    assert "2 failed" in again.stdout


def test_ci_run_calls_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in readme.splitlines() if line.endswith("python -m pytest -q"))
    assert "-c locks/cpu.txt" in command
    assert command in ci.splitlines()
