"""Report model, tables, charts and exports over the committed fixture runs.

Numbers asserted here are computed by hand from tests/fixtures/runs (see each test), so a
change to the grouping or the std maths shows up as a wrong number, not just a different one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from ftbench.report.charts import charts, charts_text, nice_ticks, power_label, tick_label
from ftbench.report.export import (
    ExportError, comparison_json, to_csv, to_json, to_markdown, write_atomic,
)
from ftbench.report.groups import (
    Stat, build_comparison, flatten_record, fmt_count, fmt_pct, fmt_stat, memory_key,
)
from ftbench.report.pareto import Point, pareto_front
from ftbench.report.select import Selection, SelectionError, select_runs
from ftbench.report.tables import BEST_STYLE, REFERENCE_STYLE, comparison_tables, section_tables
from ftbench.results.record import RunRecord, parse_record
from ftbench.results.store import load_runs, save_record

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = FIXTURES / "runs"
BAD = FIXTURES / "runs_bad"


@pytest.fixture(scope="module")
def records() -> list[RunRecord]:
    loaded = load_runs(RUNS)
    assert not loaded.problems
    return loaded.records


@pytest.fixture(scope="module")
def comparison(records):
    return build_comparison(records)


def section(comparison, preset):
    return next(s for s in comparison.sections if s.preset == preset)


def group(sec, method):
    return next(g for g in sec.groups if g.key.method == method)


def render(renderable, width: int = 80) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


# --- fixtures themselves --------------------------------------------------------------------

def test_fixture_files_are_small_valid_records():
    files = sorted(RUNS.glob("*.json"))
    assert len(files) == 16
    for path in files:
        assert path.stat().st_size < 8 * 1024, path
        parse_record(json.loads(path.read_text()))


def test_bad_fixture_files_are_reported_and_skipped(tmp_path):
    for path in [*RUNS.glob("*.json"), *BAD.glob("*.json")]:
        shutil.copy(path, tmp_path / path.name)
    loaded = load_runs(tmp_path)
    assert len(loaded.records) == 16
    problems = {p.name: why for p, why in loaded.problems}
    assert set(problems) == {"truncated.json", "junk.json", "empty.json", "future.json"}
    assert problems["truncated.json"].startswith("invalid JSON at line 1 column")
    assert "newer" in problems["future.json"]
    # The comparison of what did load is unaffected by what did not.
    assert build_comparison(loaded.records).to_dict() == build_comparison(
        load_runs(RUNS).records).to_dict()


# --- grouping and statistics ----------------------------------------------------------------

def test_groups_share_preset_method_model_dataset(comparison):
    assert [s.preset for s in comparison.sections] == ["quickstart", "lora-qa", "roberta-imdb-peft"]
    qs = section(comparison, "quickstart")
    assert [g.key.method for g in qs.groups] == ["full", "lora", "head-only", "bitfit", "qlora"]
    assert group(qs, "lora").seeds == [0, 1, 2]


@pytest.mark.parametrize("method, mean, std", [
    # accuracies per seed in the fixtures; std is the sample std (ddof=1)
    ("full", 0.812, 0.006),       # 0.812 0.806 0.818 (the cancelled seed 3 is left out)
    ("lora", 0.795, 0.005),       # 0.790 0.800 0.795
    ("head-only", 0.700, 0.004),  # 0.700 0.704 0.696
    ("bitfit", 0.770, 0.010),     # 0.770 0.760 0.780
])
def test_mean_and_sample_std(comparison, method, mean, std):
    stat = group(section(comparison, "quickstart"), method).stat("metrics.accuracy")
    assert stat.n == 3
    assert stat.mean == pytest.approx(mean, abs=1e-12)
    assert stat.std == pytest.approx(std, abs=1e-12)


def test_std_of_other_columns(comparison):
    qs = section(comparison, "quickstart")
    full_time = group(qs, "full").stat("timing.train_s")          # 62.1 60.8 63.4
    assert (full_time.mean, full_time.std) == (pytest.approx(62.1), pytest.approx(1.3))
    bitfit_torch = group(qs, "bitfit").stat("memory.torch_peak_allocated_mb")  # 410.5 412 409
    assert (bitfit_torch.mean, bitfit_torch.std) == (pytest.approx(410.5), pytest.approx(1.5))
    assert group(qs, "full").stat("memory.torch_peak_allocated_mb") == Stat(None, None, 0)


def test_stat_edge_cases():
    assert Stat.of([]) == Stat(None, None, 0)
    assert Stat.of([0.5]) == Stat(0.5, None, 1)          # one run: no spread, not 0
    assert Stat.of([1.0, 1.0]) == Stat(1.0, 0.0, 2)
    assert Stat.of([1.0, float("nan"), 3.0]) == Stat(2.0, pytest.approx(2 ** 0.5), 2)


def test_only_completed_runs_are_averaged(comparison):
    qs = section(comparison, "quickstart")
    full = group(qs, "full")
    assert len(full.runs) == 4 and full.n == 3
    assert full.status_counts == {"completed": 3, "cancelled": 1}
    qlora = group(qs, "qlora")
    assert qlora.n == 0 and qlora.mean("metrics.accuracy") is None
    assert any(n.startswith("cancelled: ") and "step 20 of 50" in n for n in qs.notes)
    assert any(n.startswith("failed: ") and "qlora needs a CUDA GPU" in n for n in qs.notes)


def test_primary_metric_per_task(comparison, records):
    assert section(comparison, "quickstart").primary_metric == "metrics.accuracy"
    assert section(comparison, "lora-qa").primary_metric == "metrics.exact_match"
    no_accuracy = [RunRecord(**{**r.__dict__, "metrics": {"f1": 0.5}}) for r in records[:2]]
    assert build_comparison(no_accuracy).sections[0].primary_metric == "metrics.f1"


def test_memory_source_is_one_that_every_group_has(comparison):
    # bitfit ran on a GPU (torch + NVML + RSS), the others on CPU (RSS only): RSS is common.
    assert section(comparison, "quickstart").memory_key == "memory.process_peak_rss_mb"
    assert section(comparison, "lora-qa").memory_key == "memory.torch_peak_allocated_mb"
    assert memory_key([]) is None


def test_mixed_settings_and_repeated_seed_are_noted(records):
    lora = [r for r in records if r.preset == "quickstart" and r.method == "lora"]
    odd = RunRecord(**{**lora[0].__dict__, "run_id": "x-lora-again",
                       "spec": {**lora[0].spec, "train": {**lora[0].spec["train"], "max_steps": 7}}})
    sec = build_comparison([*lora, odd]).sections[0]
    assert sec.groups[0].mixed_settings == ("train.max_steps",)
    assert any("differ in train.max_steps" in n for n in sec.notes)
    assert any("seed appears more than once" in n for n in sec.notes)


def test_per_run_mode_keeps_every_run(records):
    qs = [r for r in records if r.preset == "quickstart"]
    sec = build_comparison(qs, per_run=True).sections[0]
    assert len(sec.groups) == len(qs) == 14
    assert all(g.stat("metrics.accuracy").std is None for g in sec.groups)
    assert "lora s1" in [g.label for g in sec.groups]


def test_flatten_record_is_flat(records):
    row = flatten_record(records[0])
    assert row["run_id"] == records[0].run_id and row["seed"] == 0
    assert row["metrics.accuracy"] == 0.812 and row["params.trainable_pct"] == 100.0
    assert "metrics.confusion_matrix" not in row and "metrics.labels" not in row
    assert all(not isinstance(v, (list, dict)) for v in row.values())


# --- references -----------------------------------------------------------------------------

def test_reference_rows_shown_once_never_averaged(records):
    qa = [r for r in records if r.preset == "lora-qa"]
    twice = [*qa, RunRecord(**{**qa[0].__dict__, "run_id": "second-qa-run"})]
    sec = build_comparison(twice).sections[0]
    assert len(sec.references) == 1
    ref = sec.references[0]
    assert ref.label == "reported (write-up A, Colab T4)"
    assert ref.values == {"metrics.exact_match": 0.387, "timing.train_s": 260.4,
                          "params.trainable": 300000.0, "params.trainable_pct": 0.4}
    # Means come from the two measured runs only (both 0.412), never from the 0.387.
    assert sec.groups[0].stat("metrics.exact_match") == Stat(pytest.approx(0.412), 0.0, 2)


def test_references_never_on_fronts(comparison):
    rob = section(comparison, "roberta-imdb-peft")
    assert len(rob.references) == 1                       # reported 1.000 accuracy, 1.0M params
    assert rob.params_front.points == 1                   # only the measured run is a point
    assert [g.key.method for g in rob.params_front.members] == ["lora"]


# --- Pareto ---------------------------------------------------------------------------------

def test_pareto_on_fixture_groups(comparison):
    qs = section(comparison, "quickstart")
    # accuracy vs trainable: 770 -> 0.700, 26.9K -> 0.770, 74.5K -> 0.795, 22.7M -> 0.812
    assert [g.label for g in qs.params_front.members] == ["head-only", "bitfit", "lora", "full"]
    # accuracy vs RSS: bitfit (2100 MB, 0.770) is beaten by lora (1480 MB, 0.795)
    assert [g.label for g in qs.memory_front.members] == ["head-only", "lora", "full"]
    assert qs.memory_front.points == 4


def test_pareto_hand_made_points():
    pts = [Point("a", 0.9, 10), Point("b", 0.8, 5), Point("c", 0.8, 7),     # c: same metric, dearer
           Point("d", 0.7, 5), Point("e", 0.95, 100), Point("f", 0.9, 10),  # d: same cost, worse
           Point("g", float("nan"), 1), Point("h", 0.99, None)]             # f duplicates a
    assert [p.item for p in pareto_front(pts)] == ["b", "a", "f", "e"]


def test_pareto_ties_and_degenerate_inputs():
    assert pareto_front([]) == []
    assert [p.item for p in pareto_front([Point("x", 1.0, 1.0)])] == ["x"]
    # identical points: none dominates another, all are members
    assert [p.item for p in pareto_front([Point(i, 0.5, 2.0) for i in range(3)])] == [0, 1, 2]
    # dominated by an equal-cost better point and by an equal-metric cheaper point
    pts = [Point("best", 0.9, 1.0), Point("worse", 0.8, 1.0), Point("dearer", 0.9, 2.0)]
    assert [p.item for p in pareto_front(pts)] == ["best"]


# --- selection ------------------------------------------------------------------------------

def test_select_by_id_and_prefix(records):
    rid = records[3].run_id
    assert select_runs(records, Selection(ids=(rid,))) == [records[3]]
    assert select_runs(records, Selection(ids=(rid[:-3],))) == [records[3]]
    with pytest.raises(SelectionError, match="matches 16 runs"):
        select_runs(records, Selection(ids=("2026",)))
    with pytest.raises(SelectionError, match="no readable run with id 'nope'"):
        select_runs(records, Selection(ids=("nope",)))


def test_select_filters(records):
    def methods(sel):
        return sorted({r.method for r in select_runs(records, sel)})

    assert methods(Selection(preset="QuickStart")) == ["bitfit", "full", "head-only", "lora", "qlora"]
    assert methods(Selection(methods=("LORA", "bitfit"))) == ["bitfit", "lora"]
    assert len(select_runs(records, Selection(methods=("lora",)))) == 5
    assert len(select_runs(records, Selection(models=("roberta-base",)))) == 1
    assert len(select_runs(records, Selection(datasets=("squad_v2",)))) == 1
    assert [r.status for r in select_runs(records, Selection(statuses=("failed",)))] == ["failed"]
    assert select_runs(records, Selection(preset="quickstart", methods=("ia3",))) == []


def test_select_latest(records):
    qs_lora = [r for r in records if r.preset == "quickstart" and r.method == "lora"]
    rerun = RunRecord(**{**qs_lora[0].__dict__, "run_id": "20261129T000000-quickstart-lora-s0-new",
                         "created_at": "2026-11-29T00:00:00+00:00", "status": "failed"})
    pool = [*records, rerun]
    # No preset given: the newest run's preset (the re-run is the newest: quickstart).
    latest = select_runs(pool, Selection(latest=True))
    assert {r.preset for r in latest} == {"quickstart"}
    assert len(latest) == 14  # 4 methods x 3 seeds + full s3 + qlora s0, one of each
    # A newer failed (or cancelled) re-run does not hide the earlier completed run.
    assert qs_lora[0] in latest and rerun not in latest
    # Filters apply first: asking for failed runs gives the failed re-run.
    failed = select_runs(pool, Selection(latest=True, preset="quickstart", statuses=("failed",)))
    assert rerun in failed and qs_lora[0] not in failed
    # A newer *completed* re-run replaces the older one.
    redone = RunRecord(**{**rerun.__dict__, "run_id": "20261129T000100-quickstart-lora-s0-ok",
                          "created_at": "2026-11-29T00:01:00+00:00", "status": "completed"})
    latest = select_runs([*pool, redone], Selection(latest=True))
    assert redone in latest and qs_lora[0] not in latest and rerun not in latest
    # With no completed run for a key, the newest run of that key stands in.
    only_failed = select_runs([rerun], Selection(latest=True))
    assert only_failed == [rerun]
    # Without the re-run the newest preset is roberta-imdb-peft (one run).
    assert [r.preset for r in select_runs(records, Selection(latest=True))] == ["roberta-imdb-peft"]


# --- tables ---------------------------------------------------------------------------------

def test_table_contents_at_80_columns(comparison):
    text = "".join(render(t) for t in comparison_tables(comparison, 80))
    assert max(len(line) for line in text.splitlines()) <= 80
    for expected in ("quickstart: minilm-l6 on rotten_tomatoes — results", "accuracy",
                     "0.812", "±0.006", "22.7M", "100.0%", "74.5K", "0.33%", "0.0034%", "RSS",
                     "3 completed", "1 cancelled", "failed", "reported (write-up E, T4)",
                     "reported (write-up A,", "EM", "mean ± sample std over seeds"):
        assert expected in text, expected


def test_wide_table_is_one_table_with_inline_spread(comparison):
    tables = section_tables(section(comparison, "quickstart"), 250)
    assert len(tables) == 1
    text = render(tables[0], 250)
    assert "0.812 ± 0.006" in text and "22.7M (100.0%)" in text and "62.1 ± 1.3" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("head-only"))
    assert row.split()[:4] == ["head-only", "3", "50", "0.700"]  # n, then the steps column


def cell(table, header, row):
    column = next(c for c in table.columns if c.header.replace("\n", " ") == header)
    return list(column.cells)[row]


def test_best_value_per_column_highlighted(comparison):
    table = section_tables(section(comparison, "quickstart"), None)[0]
    # rows: full, lora, head-only, bitfit, qlora
    assert cell(table, "accuracy", 0).style == BEST_STYLE        # full is most accurate
    assert cell(table, "accuracy", 1).style == ""
    assert cell(table, "trainable", 2).style == BEST_STYLE       # head-only trains fewest
    assert cell(table, "train s", 3).style == BEST_STYLE         # bitfit on the GPU is fastest
    assert cell(table, "samples/s", 3).style == BEST_STYLE
    assert cell(table, "RSS MB", 2).style == BEST_STYLE
    # a column with a single value (torch MB: bitfit only) has no "best"
    assert all(c.style == "" for c in table.columns[-4].cells)


def test_reference_rows_dim_italic(comparison):
    table = section_tables(section(comparison, "roberta-imdb-peft"), None)[0]
    assert table.row_count == 2 and table.rows[1].style == REFERENCE_STYLE
    assert str(cell(table, "status", 1)) == "reported (write-up E, T4)"
    assert str(cell(table, "accuracy", 1)) == "1.000" and str(cell(table, "torch MB", 1)) == "926"
    no_refs = section_tables(section(comparison, "roberta-imdb-peft"), None, references=False)[0]
    assert no_refs.row_count == 1


def test_text_from_files_is_not_rich_markup(records):
    odd = RunRecord(**{**records[0].__dict__, "method": "[bold red]evil[/]", "run_id": "odd"})
    text = render(section_tables(build_comparison([odd]).sections[0], 200)[0], 200)
    assert "[bold red]evil[/]" in text


def test_formatting():
    assert [fmt_count(v) for v in (770, 66_400, 1_200_000, 124e6, 2.5e9, None)] == \
        ["770", "66.4K", "1.2M", "124.0M", "2.5B", "-"]
    assert [fmt_pct(v) for v in (100.0, 0.33, 0.0034, None)] == ["100.0%", "0.33%", "0.0034%", "-"]
    assert fmt_stat(Stat(0.8123, 0.0061, 3), "metric") == "0.812 ± 0.006"
    assert fmt_stat(Stat(0.8123, None, 1), "metric") == "0.812"
    assert fmt_stat(Stat(62.1, 1.3, 3), "seconds", "\n±") == "62.1\n±1.3"


# --- exports --------------------------------------------------------------------------------

def test_csv_one_flat_row_per_run(records):
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    assert len(rows) == 16
    header = list(rows[0])
    assert header[:8] == ["run_id", "preset", "method", "model", "dataset", "task", "seed", "status"]
    for col in ("params.trainable", "params.trainable_without_head", "timing.train_s",
                "memory.process_peak_rss_mb", "metrics.accuracy", "metrics.exact_match"):
        assert col in header
    assert not any("confusion_matrix" in c or c == "metrics.labels" for c in header)
    first = rows[0]
    assert first["metrics.accuracy"] == "0.812" and first["memory.torch_peak_allocated_mb"] == ""
    assert first["params.head_included"] == "true"
    qa = next(r for r in rows if r["preset"] == "lora-qa")
    assert qa["metrics.exact_match"] == "0.412" and qa["metrics.accuracy"] == ""


def test_markdown_has_mean_std_and_marked_references(comparison):
    md = to_markdown(comparison)
    assert "### quickstart" in md
    assert "| full | 3 | 50 | **0.812 ± 0.006** |" in md
    assert "| lora | 3 | 50 | 0.795 ± 0.005 |" in md
    assert "| _lora_ | - | - | _1.000_ |" in md and "_reported (write-up E, T4)_" in md
    assert "Pareto front, accuracy vs trainable parameters: head-only → bitfit → lora → full." in md
    # Every table line has the same number of cells as its header.
    for block in md.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.startswith("|")]
        if lines:
            counts = {len(re.split(r"(?<!\\)\|", ln)) for ln in lines}
            assert len(counts) == 1, block


def test_markdown_escapes_pipes(records):
    odd = RunRecord(**{**records[0].__dict__, "method": "a|b", "run_id": "odd"})
    assert "| a\\|b |" in to_markdown(build_comparison([odd]))


def test_json_export_round_trips(records):
    docs = json.loads(to_json(records))
    assert [parse_record(d).to_dict() for d in docs] == [r.to_dict() for r in records]


def test_comparison_json(comparison):
    data = json.loads(json.dumps(comparison_json(comparison, [(Path("runs/x.json"), "empty file")])))
    qs = data["sections"][0]
    full = qs["groups"][0]
    assert full["method"] == "full" and full["n"] == 3
    assert full["stats"]["metrics.accuracy"]["mean"] == pytest.approx(0.812)
    assert full["stats"]["metrics.accuracy"]["std"] == pytest.approx(0.006)
    assert [m["label"] for m in qs["pareto"]["memory"]["members"]] == ["head-only", "lora", "full"]
    assert len(data["rows"]) == 16
    assert data["skipped"] == [{"path": "runs/x.json", "problem": "empty file"}]


def test_write_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out.csv"
    write_atomic(target, "old\n")
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    with pytest.raises(ExportError, match="is a directory"):
        write_atomic(tmp_path, "x")
    with pytest.raises(ExportError, match="is a directory"):
        write_atomic(f"{tmp_path / 'newdir'}/", "x")
    with pytest.raises(ExportError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "out.md", "x")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(ExportError, match="No space left"):
        write_atomic(target, "partial")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temp file left


# --- charts ---------------------------------------------------------------------------------

def test_charts_fit_80_columns_and_name_the_front(comparison):
    items = charts(comparison, 80, 18, colorless=True)
    titles = [c.title for c in items]
    for expected in ("quickstart: accuracy by method (mean ± std)",
                     "quickstart: accuracy over steps (per run)",
                     "quickstart: training loss over steps (per run)",
                     "quickstart: trainable parameters (log scale)",
                     "quickstart: train time (s, excludes evaluation)",
                     "quickstart: peak memory (RSS MB)",
                     "quickstart: Pareto front, accuracy vs trainable params",
                     "quickstart: Pareto front, accuracy vs peak RSS MB",
                     "lora-qa: exact_match by method"):
        assert expected in titles
    # every quickstart run's loss is on the one overlaid chart, each method under its marker
    loss = next(c for c in items if c.title == "quickstart: training loss over steps (per run)")
    assert "• full ×4   x lora ×3   + head-only ×3   o bitfit ×3" in loss.text
    # a single measured point is not a front worth drawing
    assert not any(t.startswith("lora-qa: Pareto") for t in titles)
    for chart in items:
        assert "\x1b" not in chart.text
        assert max(len(line) for line in chart.text.splitlines()) <= 80, chart.title
    front = next(c for c in items if c.title.endswith("peak RSS MB"))
    assert "● front (3 of 4): head-only → lora → full   ○ dominated" in front.text
    assert "bitfit" in front.text  # dominated points are named too
    bars = next(c for c in items if c.title.startswith("quickstart: accuracy by method"))
    assert "0.812 ±0.006 (n=3)" in bars.text
    log = next(c for c in items if "log scale" in c.title)
    assert "10K" in log.text and "770 (0.0034%)" in log.text


def test_charts_follow_no_color(comparison, monkeypatch):
    sec = section(comparison, "roberta-imdb-peft")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\x1b[" in charts(build_comparison(sec.groups[0].runs), 60, 12)[0].text
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in charts(build_comparison(sec.groups[0].runs), 60, 12)[0].text


def test_charts_respect_width_and_save_as_text(comparison):
    narrow = charts(comparison, 50, 12, colorless=True)
    assert all(len(line) <= 50 for c in narrow for line in c.text.splitlines())
    text = charts_text(narrow)
    assert text.count("quickstart: Pareto front") == 2 and text.count("front (") == 2
    assert "\x1b" not in text


def test_tick_helpers():
    assert nice_ticks(0, 1, 5) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(1390, 2100, 4) == [1400, 1600, 1800, 2000]
    assert nice_ticks(1, 1, 4) == []
    assert [tick_label(t, [0.0, 0.25, 0.5]) for t in (0.0, 0.25)] == ["0.00", "0.25"]
    assert [power_label(p) for p in (0, 2, 3, 7, 9)] == ["1", "100", "1K", "10M", "1B"]


# --- import hygiene -------------------------------------------------------------------------

def test_report_imports_no_torch_and_cli_module_is_light():
    code = ("import sys, ftbench.report.cli; assert 'rich' not in sys.modules, 'rich'; "
            "assert 'plotext' not in sys.modules, 'plotext'; "
            "import ftbench.report.tables, ftbench.report.charts, ftbench.report.export; "
            "bad = [m for m in ('torch', 'transformers', 'textual') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).parent.parent)


def test_saved_record_round_trip_feeds_report(tmp_path, records):
    # A record written by the store is read back and compared like any other.
    save_record(records[0], tmp_path)
    loaded = load_runs(tmp_path)
    assert build_comparison(loaded.records).sections[0].groups[0].n == 1


def test_odd_values_in_run_files_do_not_crash_reports(records):
    """parse_record accepts strings, NaN and nested values inside sections; reports must too."""
    base = records[0]
    odd = [
        RunRecord(**{**base.__dict__, "run_id": "odd-1",
                     "params": {**base.params, "trainable": "many", "total": 0},
                     "metrics": {"accuracy": float("nan"), "f1": [1, 2], "average": "binary"},
                     "timing": {**base.timing, "train_s": 1e300},
                     "series": {"train": [{"step": "x"}], "eval": [{"epoch": 0.5, "accuracy": 0.6},
                                                                   {"step": None}], "gpu": []}}),
        RunRecord(**{**base.__dict__, "run_id": "odd-2", "spec": {"data": "not a table"},
                     "references": ["junk", {"method": "full", "metrics": {"accuracy": "high"}}]}),
    ]
    comparison = build_comparison(odd)
    for table in comparison_tables(comparison, 80):
        render(table)
    charts(comparison, 80, 15, colorless=True)
    csv_rows = list(csv.DictReader(io.StringIO(to_csv(odd))))
    assert csv_rows[0]["metrics.accuracy"] == "" and csv_rows[0]["params.trainable"] == "many"
    assert json.loads(to_json(odd))[0]["metrics"]["accuracy"] is None  # NaN is not JSON
    to_markdown(comparison)
    json.loads(json.dumps(comparison_json(comparison)))


def test_bars_label_every_value_and_whisker_only_spread() -> None:
    from ftbench.report.charts import _bars

    text = _bars("accuracy", [("full", 0.76, 0.02, "0.760 ± 0.020"),
                              ("lora", 0.785, 0.01, "0.785 ± 0.010"),
                              ("head-only", 0.62, None, "0.620")], 80, 20, True)
    lines = text.splitlines()
    for label, value in (("full", "0.760 ± 0.020"), ("lora", "0.785 ± 0.010"),
                         ("head-only", "0.620")):
        row = next(line for line in lines if line.lstrip().startswith(label + "┤"))
        assert value in row
        # one blank cell between the bar (or its whisker) and the value
        assert re.search(r"[█┼─] +" + re.escape(value), row)
    head_only = next(line for line in lines if line.lstrip().startswith("head-only┤"))
    full = next(line for line in lines if line.lstrip().startswith("full┤"))
    assert "┼" in full and "┼" not in head_only  # no spread, no whisker
    assert max(len(line) for line in lines) <= 80


# --- steady-state throughput and budgets ----------------------------------------------------

def test_rates_are_steady_state_by_default_with_marked_whole_run_fallback(comparison):
    qs = section(comparison, "quickstart")
    full, head = group(qs, "full"), group(qs, "head-only")
    # full: all three runs carry steady figures (fixtures: 45 steps x 32 samples / steady_s).
    steady = [1440 / (t * 0.86) for t in (62.1, 60.8, 63.4)]
    assert full.mean("rate.samples_per_s") == pytest.approx(sum(steady) / 3, abs=0.01)
    assert not full.whole_run_rates
    # head-only s2 has no steady window: the whole row falls back to whole-run figures,
    # never a mean mixing the two bases.
    assert head.whole_run_rates
    assert head.mean("rate.samples_per_s") == pytest.approx((78.05 + 76.56 + 79.6) / 3)
    assert qs.warmup_steps == [5]
    text = "".join(render(t, 120) for t in section_tables(qs, 120))
    assert "27.0" in text and "78.1†" in text and "25.8" not in text
    assert "samples/s: steady state after 5 warm-up steps" in text
    assert "† whole run" in text
    # Old records (no steady keys at all) fall back and are marked too.
    qa = section(comparison, "lora-qa")
    assert group(qa, "lora").whole_run_rates
    assert "34.5†" in "".join(render(t, 120) for t in section_tables(qa, 120))
    assert "steady state after" not in (qa.rate_note or "")


def test_csv_carries_both_throughput_sets(records):
    rows = list(csv.DictReader(io.StringIO(to_csv(records))))
    for column in ("timing.samples_per_s", "timing.steady_samples_per_s", "timing.warmup_steps",
                   "timing.steady_mfu", "throughput_basis"):
        assert column in rows[0], column
    by_id = {r["run_id"]: r for r in rows}
    full = by_id["20261128T080200-quickstart-full-s0-000001"]
    assert (full["timing.samples_per_s"], full["timing.steady_samples_per_s"]) == ("25.76", "26.96")
    assert full["throughput_basis"] == "steady state" and full["timing.warmup_steps"] == "5"
    qa = by_id["20261128T083000-lora-qa-lora-s42-00000f"]
    assert qa["timing.steady_samples_per_s"] == "" and qa["throughput_basis"] == "whole run"


def test_markdown_says_steady_state_and_marks_fallback(comparison):
    md = to_markdown(comparison)
    assert "78.1† ± 1.5" in md and "| 27.0 ± 0.6 |" in md
    assert "- Samples/s: steady state after 5 warm-up steps; † whole run" in md


def _short_rerun(record: RunRecord, run_id: str) -> RunRecord:
    spec = {**record.spec, "train": {**record.spec["train"], "max_steps": 5},
            "data": {**record.spec["data"], "train_size": 200, "eval_size": 64}}
    return RunRecord(**{**record.__dict__, "run_id": run_id, "spec": spec,
                        "created_at": "2026-11-29T00:00:00+00:00",
                        "timing": {**record.timing, "steps": 5}})


def test_budget_mismatch_is_a_loud_warning_and_by_budget_splits(records):
    qs = [r for r in records if r.preset == "quickstart"]
    lora = next(r for r in qs if r.method == "lora" and r.seed == 0)
    short = _short_rerun(lora, "20261129T000000-quickstart-lora-s0-short")
    pool = select_runs([*qs, short], Selection(latest=True))
    sec = build_comparison(pool).sections[0]
    assert dict(sec.budget_differences) == {"max_steps": ["5", "none"],
                                            "train_size": ["200", "1600"],
                                            "eval_size": ["64", "400"]}
    table = section_tables(sec, 120)[0]
    assert table.title.spans and table.title.spans[0].style == "bold red"
    text = render(table, 120)
    assert "⚠ these runs differ in budget (max_steps 5 / none; train_size 200 / 1600;" in text
    assert "--by-budget" in text
    # lora's group now mixes budgets too, and its steps column says 5 vs 50.
    assert "train.max_steps" in group(sec, "lora").mixed_settings
    md = to_markdown(build_comparison(pool))
    assert "> **Warning:** these runs differ in budget" in md
    # Split by budget: two sections, each consistent, each named by what sets it apart.
    split = build_comparison(pool, by_budget=True).sections
    assert [s.budget for s in split] == [
        "max_steps none, train_size 1600, eval_size 400",
        "max_steps 5, train_size 200, eval_size 64"]
    assert all(not s.budget_differences and not s.warnings for s in split)
    assert [g.method for g in split[1].groups] == ["lora"]
    assert "quickstart [max_steps 5, train_size 200, eval_size 64]" in render(
        section_tables(split[1], 120)[0], 120)
    # Runs that agree on budget get no warning.
    assert not build_comparison(qs).sections[0].warnings


def test_overlaid_curves_over_training_time(records):
    from ftbench.report.charts import loss_curves_chart

    sec = build_comparison([r for r in records if r.preset == "quickstart"]).sections[0]
    chart = loss_curves_chart(sec, 80, 16, colorless=True, x_axis="time")
    assert chart is not None and chart.title == "quickstart: training loss over train time (per run)"
    assert "train time (s)" in chart.text
    # The x axis reaches the longest run's training time (full: about 63 s), not its 50 steps.
    assert "60" in chart.text.splitlines()[-3]
    with pytest.raises(ValueError):
        loss_curves_chart(sec, 80, 16, colorless=True, x_axis="epochs")


def test_single_point_curve_is_drawn(records):
    """A run that logged once still shows its point (not an empty chart)."""
    from ftbench.report.charts import loss_curves_chart

    lora = next(r for r in records if r.preset == "quickstart" and r.method == "lora")
    one = RunRecord(**{**lora.__dict__, "series": {"train": [
        {"step": 5, "epoch": 0.1, "loss": 0.69, "lr": 1e-3, "samples_per_s": 30, "t": 4.0}]}})
    chart = loss_curves_chart(build_comparison([one]).sections[0], 60, 12, colorless=True)
    assert chart is not None
    plot = chart.text.split("┌", 1)[1]
    assert "•" in plot.split("└", 1)[0]
