"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, checked by import-linter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed (pip install -e '.[test]')")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([exe, "--no-cache", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def test_layer_contracts_are_kept() -> None:
    proc = _lint()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert "The core never imports the UI (textual) KEPT" in proc.stdout


def test_the_checker_sees_a_broken_contract(tmp_path: Path) -> None:
    # The TUI does import textual: a contract forbidding it must be reported broken, so the
    # kept contracts above are evidence, not a checker that looks at nothing.
    config = tmp_path / "contracts.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["ftbench"]\ninclude_external_packages = true\n'
                      '[[tool.importlinter.contracts]]\nname = "tui without textual"\ntype = "forbidden"\n'
                      'source_modules = ["ftbench.tui"]\nforbidden_modules = ["textual"]\n')
    proc = _lint(str(config))
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout
