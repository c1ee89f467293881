"""docs/decoders.md's measured tables are what `ftbench compare` prints for the records kept
in docs/decoders-runs/: the page cannot drift from its records."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rows(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines()
            if line.strip().split(" ", 1)[0] in ("lora", "full", "qlora")]


def test_the_measured_tables_match_the_kept_records() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ftbench.cli", "compare", "--runs-dir", "docs/decoders-runs",
         "--no-charts"], capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = (ROOT / "docs" / "decoders.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Measured: sft-quickstart"):]
    table = section[section.index("```"):section.index("```", section.index("```") + 3)]
    printed = _rows(proc.stdout)
    documented = _rows(table)
    assert documented and all(row in printed for row in documented), (documented, printed)
