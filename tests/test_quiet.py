"""Libraries' log chatter goes to ftbench's library log, never above ftbench's own output."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code_or_args: list[str], cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "FTBENCH_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "100"}
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_library_warning_goes_to_the_log_file_not_the_terminal(tmp_path):
    code = ("import logging; from ftbench.quiet import quiet_libraries, library_log; quiet_libraries(); "
            "logging.getLogger('somelib.sub').warning('chatter from a library'); print(library_log())")
    out = _run(["-c", code], tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    log = Path(out.stdout.strip())
    assert log == tmp_path / "logs" / "libraries.log"
    assert "somelib.sub WARNING: chatter from a library" in log.read_text()


def test_an_unwritable_library_log_drops_the_record_silently(tmp_path):
    (tmp_path / "logs").write_text("a file where the folder should be")
    code = ("import logging; from ftbench.quiet import quiet_libraries; quiet_libraries(); "
            "logging.getLogger('somelib').error('lost'); print('ok')")
    out = _run(["-c", code], tmp_path)
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok\n", "")


def test_doctor_prints_only_its_own_output_with_the_hub_offline(tmp_path):
    """kernels (a bitsandbytes dependency) logs 'Skipping publisher trust check ...' at import
    when the hub is offline; it went above the doctor's table."""
    out = _run(["-m", "ftbench", "doctor"], tmp_path)
    text = out.stdout + out.stderr
    assert "publisher trust" not in text
    assert text.lstrip().startswith("ftbench doctor"), text[:300]
