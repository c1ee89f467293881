"""``ftbench compare`` / ``ftbench export`` end to end, through their argparse entry points."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from ftbench.report.cli import add_compare_parser, add_export_parser

FIXTURES = Path(__file__).parent / "fixtures"
COLOR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;5;\d+|38;2;[\d;]+)m")


def run(argv: list[str]) -> int:
    """Parse like the ftbench CLI does (the lead wires the same two functions in)."""
    parser = argparse.ArgumentParser(prog="ftbench")
    sub = parser.add_subparsers(dest="command")
    add_compare_parser(sub)
    add_export_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    shutil.copytree(FIXTURES / "runs", folder)
    return folder


@pytest.fixture
def messy_dir(runs_dir: Path) -> Path:
    for path in (FIXTURES / "runs_bad").iterdir():
        shutil.copy(path, runs_dir / path.name)
    return runs_dir


@pytest.fixture(autouse=True)
def plain_env(monkeypatch):
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "FTBENCH_RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_compare_tables_only(runs_dir, capsys):
    assert run(["compare", "--runs-dir", str(runs_dir), "--no-charts", "--width", "80"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "quickstart: minilm-l6 on rotten_tomatoes — results" in out
    assert "0.812" in out and "±0.006" in out and "reported (write-up E, T4)" in out
    assert "┤" not in out  # no chart axes
    assert max(len(line) for line in out.splitlines()) <= 80


def test_compare_with_charts_at_80_columns(runs_dir, capsys):
    assert run(["compare", "--runs-dir", str(runs_dir), "--width", "80", "--preset", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "quickstart: Pareto front, accuracy vs trainable params" in out
    assert "● front (4 of 4): head-only → bitfit → lora → full" in out
    assert "┤" in out and "lora-qa" not in out
    assert out.index("— cost") < out.index("accuracy by method")  # tables before charts


def test_compare_json(messy_dir, capsys):
    assert run(["compare", "--runs-dir", str(messy_dir), "--json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["format"] == "ftbench-compare"
    qs = data["sections"][0]
    lora = next(g for g in qs["groups"] if g["method"] == "lora")
    assert lora["n"] == 3 and lora["seeds"] == [0, 1, 2]
    assert lora["stats"]["metrics.accuracy"]["mean"] == pytest.approx(0.795)
    assert lora["stats"]["metrics.accuracy"]["std"] == pytest.approx(0.005)
    assert [m["label"] for m in qs["pareto"]["params"]["members"]] == \
        ["head-only", "bitfit", "lora", "full"]
    assert data["sections"][2]["references"][0]["label"] == "reported (write-up E, T4)"
    assert len(data["rows"]) == 16
    assert sorted(Path(s["path"]).name for s in data["skipped"]) == \
        ["empty.json", "future.json", "junk.json", "truncated.json"]
    assert len(err.splitlines()) == 4  # the same four, one warning line each


def test_corrupt_and_newer_files_warn_one_line_each(messy_dir, capsys):
    assert run(["compare", "--runs-dir", str(messy_dir), "--no-charts", "--width", "100"]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert len(lines) == 4 and all(line.startswith("ftbench: skipped ") for line in lines)
    assert any("truncated.json: invalid JSON at line 1 column" in line for line in lines)
    assert any("future.json: schema_version 99 is newer" in line for line in lines)
    assert any("junk.json: not UTF-8 text" in line for line in lines)
    assert any("empty.json: empty file" in line for line in lines)
    assert "0.812" in out and "Traceback" not in err


def test_no_color_respected(runs_dir, capsys, monkeypatch):
    argv = ["compare", "--runs-dir", str(runs_dir), "--width", "80", "--preset", "quickstart"]
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert run(argv) == 0
    assert COLOR.search(capsys.readouterr().out)  # colours when forced on
    monkeypatch.setenv("NO_COLOR", "1")
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert not COLOR.search(out) and "Pareto front" in out


def test_selection_options(runs_dir, capsys):
    assert run(["compare", "--runs-dir", str(runs_dir), "--json", "--method", "lora,bitfit",
                "--status", "completed"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["method"] for r in data["rows"]} == {"lora", "bitfit"}
    assert len(data["rows"]) == 8  # 3 + 3 quickstart, 1 lora-qa, 1 roberta
    assert run(["compare", "--runs-dir", str(runs_dir), "--json", "--latest"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["preset"] for s in data["sections"]] == ["roberta-imdb-peft"]
    rid = "20261128T083000-lora-qa"
    assert run(["compare", "--runs-dir", str(runs_dir), "--json", rid]) == 0
    assert [r["preset"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["lora-qa"]


def test_per_run_and_no_references(runs_dir, capsys):
    assert run(["compare", "--runs-dir", str(runs_dir), "--no-charts", "--width", "200",
                "--preset", "roberta-imdb-peft", "--no-references", "--per-run"]) == 0
    out = capsys.readouterr().out
    assert "reported" not in out and "seed" in out


@pytest.mark.parametrize("argv, message", [
    (["--method", "nope"], "no runs match method nope (16 runs in"),
    (["--preset", "quickstart", "--model", "roberta-base"], "no runs match preset quickstart, model roberta-base"),
    (["2026"], "run id prefix '2026' matches 16 runs; give more of it"),
    (["missing-id"], "no readable run with id 'missing-id'"),
    (["--status", "finished"], "unknown status 'finished'"),
])
def test_usage_errors_exit_2_with_one_line(runs_dir, capsys, argv, message):
    assert run(["compare", "--runs-dir", str(runs_dir), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("ftbench: error: ") and message in err


def test_missing_or_empty_runs_folder(tmp_path, capsys):
    assert run(["compare", "--runs-dir", str(tmp_path / "nothing")]) == 2
    assert "no runs folder" in capsys.readouterr().err
    assert run(["export", "--runs-dir", str(tmp_path)]) == 2
    assert "no readable runs in" in capsys.readouterr().err


def test_only_corrupt_files(tmp_path, capsys):
    for path in (FIXTURES / "runs_bad").iterdir():
        shutil.copy(path, tmp_path / path.name)
    assert run(["compare", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 5 and err[-1].startswith("ftbench: error: no readable runs")


def test_save_charts(runs_dir, tmp_path, capsys):
    target = tmp_path / "charts.txt"
    assert run(["compare", "--runs-dir", str(runs_dir), "--no-charts", "--width", "80",
                "--preset", "quickstart", "--save-charts", str(target)]) == 0
    text = target.read_text()
    assert "\x1b" not in text and "Pareto front" in text and "accuracy by method" in text
    assert "charts saved to" in capsys.readouterr().err


def test_export_csv_stdout(runs_dir, capsys):
    assert run(["export", "--format", "csv", "--runs-dir", str(runs_dir), "--preset", "quickstart"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 14 and {r["preset"] for r in rows} == {"quickstart"}


def test_export_md_and_json_to_file(runs_dir, tmp_path, capsys):
    md = tmp_path / "results.md"
    assert run(["export", "-f", "md", "-o", str(md), "--runs-dir", str(runs_dir)]) == 0
    assert "| full | 3 | 50 | **0.812 ± 0.006** |" in md.read_text()
    assert "wrote 16 runs to" in capsys.readouterr().err
    out = tmp_path / "runs.json"
    assert run(["export", "-f", "json", "-o", str(out), "--runs-dir", str(runs_dir), "--method", "bitfit"]) == 0
    assert [d["method"] for d in json.loads(out.read_text())] == ["bitfit"] * 3


def test_export_refuses_directory(runs_dir, tmp_path, capsys):
    assert run(["export", "-f", "csv", "-o", str(tmp_path), "--runs-dir", str(runs_dir)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_wired_into_main_cli(runs_dir, capsys):
    from ftbench.cli import main

    assert main(["compare", "--runs-dir", str(runs_dir), "--no-charts", "--width", "80"]) == 0
    assert "0.812" in capsys.readouterr().out


def test_compare_latest_warns_on_budget_mismatch_and_by_budget_splits(runs_dir, capsys):
    """The first-hour story: a 5-step re-run beside 50-step runs must not pass unnoticed."""
    source = runs_dir / "20261128T080800-quickstart-lora-s0-000004.json"
    doc = json.loads(source.read_text())
    doc["run_id"] = "20261129T000000-quickstart-lora-s0-short1"
    doc["created_at"] = "2026-11-29T00:00:00+00:00"
    doc["spec"]["train"]["max_steps"] = 5
    doc["spec"]["data"]["train_size"] = 200
    doc["timing"]["steps"] = 5
    (runs_dir / f"{doc['run_id']}.json").write_text(json.dumps(doc))
    assert run(["compare", "--runs-dir", str(runs_dir), "--latest", "--no-charts",
                "--width", "80"]) == 0
    out = capsys.readouterr().out
    assert "⚠ these runs differ in budget (max_steps 5 / none; train_size 200 / 1600)" \
        in " ".join(out.split())
    assert "steps" in out
    assert run(["compare", "--runs-dir", str(runs_dir), "--latest", "--no-charts", "--by-budget",
                "--width", "80"]) == 0
    out = capsys.readouterr().out
    assert "differ in budget" not in out
    assert "quickstart [max_steps 5, train_size 200]" in out
    assert run(["compare", "--runs-dir", str(runs_dir), "--latest", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sections"][0]["budget_differences"] == {"max_steps": ["5", "none"],
                                                         "train_size": ["200", "1600"]}


def test_save_charts_as_svg_and_png_refused(runs_dir, tmp_path, capsys):
    target = tmp_path / "charts.svg"
    assert run(["compare", "--runs-dir", str(runs_dir), "--no-charts", "--width", "80",
                "--preset", "quickstart", "--save-charts", str(target)]) == 0
    svg = target.read_text()
    assert svg.startswith("<svg") and "Pareto" in svg and "training" in svg
    assert "fill=" in svg  # in colour, unlike the text file
    capsys.readouterr()
    assert run(["compare", "--runs-dir", str(runs_dir), "--no-charts", "--preset", "quickstart",
                "--save-charts", str(tmp_path / "charts.png")]) == 2
    assert "PNG is not supported; save as .svg" in capsys.readouterr().err
    assert not (tmp_path / "charts.png").exists()


def _predicted(source: Path, target: Path, run_id: str, prediction: dict, memory: dict) -> None:
    doc = json.loads(source.read_text())
    doc.update(run_id=run_id, prediction=prediction)
    doc["memory"].update(memory)
    (target / f"{run_id}.json").write_text(json.dumps(doc))


def test_compare_shows_plan_vs_measured_memory_per_run(tmp_path, capsys):
    """Issue 22: compare holds each run's stored prediction against what it measured, or says
    why it cannot (the fixture runs predate predictions: they get no row)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    src = FIXTURES / "runs"
    window = {"how": "kernel high-water mark", "problem": None, "runs_before": 1}
    cpu = {"device": {"kind": "cpu"}, "params": {"trainable": 22_713_602},
           "memory": {"peak_mb": 755.3, "device_total_mb": 1057.4}, "baseline_rss_mb": 500.0,
           "rss_window": window}
    _predicted(src / "20261128T080200-quickstart-full-s0-000001.json", runs,
               "20261201T000000-quickstart-full-s0-aaaaaa", cpu, {"process_peak_rss_mb": 1581.0})
    old = {**cpu, "memory": {"peak_mb": 511.6, "device_total_mb": 716.2}}
    old.pop("rss_window")  # stored before ftbench measured from a trimmed baseline
    _predicted(src / "20261128T080800-quickstart-lora-s0-000004.json", runs,
               "20261201T000100-quickstart-lora-s0-bbbbbb", old, {"process_peak_rss_mb": 527.0})
    _predicted(src / "20261128T081400-quickstart-head-only-s0-000007.json", runs,
               "20261201T000200-quickstart-head-only-s0-cccccc",
               {**cpu, "memory": {"peak_mb": 116.8, "device_total_mb": 163.5}},
               {"process_peak_rss_mb": 1033.0})
    assert run(["compare", "--runs-dir", str(runs), "--no-charts", "--width", "100"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("plan vs measured memory · quickstart (classification)"):]
    row = {line.split()[0]: line for line in table.splitlines() if line.split()[:1] in
           (["full"], ["lora"], ["head-only"])}
    assert "1,057 needs" in row["full"] and "1,081" in row["full"] and "-2%" in row["full"]
    words = " ".join(table.split())
    assert "RSS growth" in row["full"] and "the kernel's high-water mark" in words
    assert "not measurable" in row["lora"] and "recorded before ftbench measured RSS" in words
    assert "-69%" in row["head-only"]  # a miss is shown as one, not hidden
    assert run(["compare", "--runs-dir", str(runs), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)["sections"][0]["plan_vs_measured"]
    assert [(p["method"], p["predicted"], p["measured_mb"]) for p in plan] == [
        ("full", "needs", 1081.0), ("lora", "needs", 27.0), ("head-only", "needs", 533.0)]
    assert plan[0]["error"] == pytest.approx((1057.4 - 1081) / 1081)
    assert plan[1]["error"] is None and plan[1]["unmeasurable"].startswith("recorded before")
