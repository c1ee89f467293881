"""Every script in benchmarks/ and docs/ runs, with tiny settings, so none can rot.

`benchmarks/gpu.py` had never run when it was first taken to a GPU, and failed on every
configuration. Each script here runs in a fresh process on tiny CPU models and synthetic data
(no downloads), and its output is checked for the table or JSON it promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for p in
                 [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("docs/*.py")])


def run(*args: str, timeout: int = 600, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
                                                **(env or {})})
    assert proc.returncode == 0, f"{args}: {proc.stderr[-3000:]}"
    return proc.stdout


def test_every_script_has_a_tiny_run_below() -> None:
    covered = {"benchmarks/gpu.py", "benchmarks/baselines.py", "benchmarks/overhead.py",
               "benchmarks/cpu_speed.py",
               "benchmarks/plain_trainer.py", "benchmarks/monitoring.py", "benchmarks/scaling.py",
               "benchmarks/startup.py", "benchmarks/reproduce.py", "docs/screenshots.py",
               "benchmarks/airgap.py", "benchmarks/sft_overhead.py", "benchmarks/sft_trainer.py"}
    extra = {s for s in SCRIPTS if s.startswith("benchmarks/plan")}   # tested beside `ftbench plan`
    assert set(SCRIPTS) - extra == covered, "a new script needs a tiny run in this file"


def test_gpu_benchmark_tiny(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    text = run("benchmarks/gpu.py", "--tiny", "--out", str(out))
    rows = json.loads(out.read_text())
    sections = {r["section"] for r in rows}
    assert sections == {"environment", "throughput", "per_method", "auto_batch", "tui", "qa", "qa_speed",
                        "levers"}
    assert [r["lever_off"] for r in rows if r["section"] == "levers"] == [
        "(none: all on)", "pad_collator", "pad_multiple", "fused_adamw"]
    ftbench_rows = [r for r in rows if r["section"] in ("throughput", "per_method", "auto_batch", "qa",
                                                        "qa_speed", "levers")]
    assert all(r.get("status") == "completed" for r in ftbench_rows
               if not (r.get("error") or "").startswith("qlora unavailable")), \
        [r.get("error") for r in ftbench_rows]
    through = [r for r in rows if r["section"] == "throughput" and r.get("status") == "completed"]
    assert through and all(r["trainer_samples_per_s"] and r["loop_samples_per_s"] for r in through)
    assert all(r["steady_samples_per_s"] for r in through)          # 12 steps: a steady window
    auto = [r for r in rows if r["section"] == "auto_batch"]
    assert [r["compiled"] for r in auto] == [False, True] and all(r["batch_size"] == 32 for r in auto)
    (tui,) = [r for r in rows if r["section"] == "tui"]
    assert tui["tui_train_s"] and tui["headless_train_s"] and not tui["tui_error"]
    (qa,) = [r for r in rows if r["section"] == "qa"]
    assert qa["baseline_em"] == 0.5 and qa["has_ans_total"] + qa["no_ans_total"] == 12
    assert "**Throughput" in text and "| tiny-bert | full |" in text
    # the table can be printed again from the saved rows (how the two GPU calls are joined)
    again = run("benchmarks/gpu.py", "--report", str(out))
    assert "**lora-qa --offline**" in again and "| tiny-roberta | lora |" in again


def test_overhead_and_plain_trainer_tiny() -> None:
    text = run("benchmarks/overhead.py", "--tiny", "--max-steps", "3", "--reps", "1")
    result = json.loads(text[text.index("{"):])
    assert result["train_ratio"] > 0 and result["command_ratio"] > 0


def test_sft_overhead_and_sft_trainer_tiny() -> None:
    text = run("benchmarks/sft_overhead.py", "--tiny", "--max-steps", "3", "--reps", "1")
    result = json.loads(text[text.index("{"):])
    (row,) = result["rows"]
    assert row["ftbench_tokens"] == row["plain_tokens"] > 0   # the same examples, the same batches
    assert result["median_ratio"] > 0


def test_cpu_speed_tiny(tmp_path: Path) -> None:
    out = tmp_path / "reps.json"
    text = run("benchmarks/cpu_speed.py", "--tiny", "--arms", "before,fp32,after", "--method", "full",
               "--out", str(out))
    summary = json.loads(text[text.index("{"):])
    arms = summary["arms"]
    assert arms["before"]["precision"] == arms["fp32"]["precision"] == ["fp32"]
    assert arms["after"]["train_eval_ratio_to_before"] > 0
    (rep,) = json.loads(out.read_text())
    (before,), (after,) = rep["before"]["runs"], rep["after"]["runs"]
    assert before["eval_sampling"] == "sequential (dataset order)"
    assert after["eval_sampling"].startswith("sorted by length")


def test_monitoring_tiny() -> None:
    text = run("benchmarks/monitoring.py", "--tiny", "--max-steps", "3", "--reps", "1")
    assert json.loads(text[text.index("{"):])["train_ratio"] > 0


def test_scaling_tiny() -> None:
    text = run("benchmarks/scaling.py", "--model", "tiny-bert", "--dataset", "synthetic-sentiment",
               "--methods", "lora", "--lengths", "32", "--batches", "4", "--steps", "2")
    rows = json.loads(text.strip().splitlines()[-1])
    assert rows and "error" not in rows[0] and rows[0]["s_per_step"] > 0


def test_startup_tiny() -> None:
    text = run("benchmarks/startup.py", "--reps", "1")
    result = json.loads(text.strip().splitlines()[-1])
    assert result["ftbench --help"] > 0


def test_reproduce_tiny(tmp_path: Path) -> None:
    """The reproduction script runs presets (tiny-bert, 2 steps) and writes the table from
    their records: measured rows for the presets run, a stated reason for the others."""
    out, runs = tmp_path / "reproduction.md", tmp_path / "runs"
    run("benchmarks/reproduce.py", "--tiny", "--only", "bert-synthetic", "--only", "lora-qa",
        "--runs-dir", str(runs), "--out", str(out))
    text = out.read_text()
    records = sorted(p.stem for p in runs.glob("*.json"))
    assert len(records) == 2 and all(rid in text for rid in records)
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| preset")}
    assert "write-up's 100 % not credible" in rows[("bert-synthetic", "full")]
    assert "exact match 0.387" in rows[("lora-qa", "lora")]
    assert "not run yet" in rows[("peft-synthetic", "prefix")]
    # --report-only rebuilds the same table from the records alone
    again = tmp_path / "again.md"
    run("benchmarks/reproduce.py", "--report-only", "--tiny", "--runs-dir", str(runs),
        "--out", str(again))
    assert again.read_text() == text
    seeds = tmp_path / "seeds.md"  # docs/seeds.md's short rows
    seeds.write_text("intro\n<!-- REPRODUCTION-START -->\nold\n<!-- REPRODUCTION-END -->\nend\n")
    run("benchmarks/reproduce.py", "--report-only", "--tiny", "--runs-dir", str(runs),
        "--out", str(again), "--headline", str(seeds))
    block = seeds.read_text()
    assert "old" not in block and block.startswith("intro\n") and block.endswith("end\n")
    assert "| bert-synthetic | full | accuracy 1.000 |" in block and "peft-synthetic" not in block


def test_airgap_round_trip_tiny(tmp_path: Path) -> None:
    """pack -> fresh venv, no index -> install.py -> quickstart (tests/test_pack.py has the rest)."""
    out = tmp_path / "airgap.json"
    run("benchmarks/airgap.py", "--tiny", "--work", str(tmp_path / "work"), "--out", str(out))
    figures = json.loads(out.read_text())
    assert figures["status"] == "completed" and figures["model"] == "tiny-bert"
    assert figures["wheels"] == 2 and figures["split_files"] == 1 and figures["volumes"] == 2
    assert figures["largest_volume_mib"] <= 1.0


@pytest.mark.skipif(not (ROOT / "docs" / "screenshot-data").is_dir(), reason="no recorded data")
def test_screenshots_draw(tmp_path: Path) -> None:
    run("docs/screenshots.py", "--out", str(tmp_path))
    assert {p.name for p in tmp_path.glob("*.svg")} >= {"tui-live.svg", "tui-compare.svg"}


def test_reproduce_tiny_reaches_the_tune_path(tmp_path: Path) -> None:
    """imdb-strategies' CPU plan also runs a sweep: with --tiny, 2 rates per method on
    tiny-bert, then one final per method, each a row under its default-rate row."""
    out, runs = tmp_path / "reproduction.md", tmp_path / "runs"
    run("benchmarks/reproduce.py", "--tiny", "--only", "imdb-strategies", "--runs-dir", str(runs),
        "--out", str(out))
    text = out.read_text()
    lines = [line for line in text.splitlines() if line.startswith("| imdb-strategies |")]
    methods = [line.split("|")[2].strip() for line in lines]
    for method in ("head-only", "last-layer", "lora", "qlora"):
        at = methods.index(method)
        assert methods[at + 1].startswith(f"{method} (tuned: lr "), methods
    assert len(methods) == 8
    assert "imdb-strategies sweep: 8 trials" in text
