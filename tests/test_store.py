"""Run records: round trip, atomic writes, tolerant reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ftbench.results.record import SCHEMA_VERSION, RecordError, RunRecord, parse_record
from ftbench.results.store import (StoreError, check_run_id, find_run, load_runs, new_run_id,
                                   save_record)


def make_record(run_id: str = "20261128T000000-p-full-s1-abcdef", **kw: object) -> RunRecord:
    rec = RunRecord(run_id=run_id, preset="p", method="full", status="completed",
                    created_at="2026-11-28T00:00:00+00:00",
                    spec={"model": "tiny-bert", "data": {"name": "synthetic-sentiment"}, "seed": 1})
    rec.metrics = {"accuracy": 0.75, "confusion_matrix": [[3, 1], [1, 3]]}
    rec.params.update(trainable=10, total=100, trainable_without_head=8)
    for key, value in kw.items():
        setattr(rec, key, value)
    return rec


def test_round_trip(tmp_path: Path) -> None:
    rec = make_record()
    path = save_record(rec, tmp_path)
    assert path == tmp_path / f"{rec.run_id}.json"
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION
    for key in ("params", "timing", "memory", "metrics", "series", "environment", "spec", "error"):
        assert key in doc
    assert doc["memory"]["torch_peak_allocated_mb"] is None  # unavailable stays null
    back = parse_record(doc)
    assert back.to_dict() == rec.to_dict()
    assert find_run(rec.run_id[:20], tmp_path).run_id == rec.run_id


def test_no_temp_files_left_and_nan_refused(tmp_path: Path) -> None:
    rec = make_record(metrics={"accuracy": float("nan")})
    with pytest.raises(ValueError):
        save_record(rec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot write to runs folder"):
        save_record(make_record(), blocker / "runs")


@pytest.mark.parametrize("bad", ["../evil", "a/b", "", ".hidden", "x" * 200])
def test_run_ids_cannot_escape(bad: str) -> None:
    with pytest.raises(StoreError):
        check_run_id(bad)


def test_new_run_ids_are_unique_and_valid() -> None:
    ids = {new_run_id("quick start!", "head-only", 3) for _ in range(200)}
    assert len(ids) == 200
    for run_id in ids:
        assert check_run_id(run_id) == run_id


def test_corrupt_and_future_files_are_reported_and_skipped(tmp_path: Path) -> None:
    good = save_record(make_record(), tmp_path)
    (tmp_path / "trunc.json").write_text(good.read_text()[:50])
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "binary.json").write_bytes(os.urandom(64) + b"\xff")
    future = json.loads(good.read_text())
    future["schema_version"] = 99
    future["run_id"] = "future"
    (tmp_path / "future.json").write_text(json.dumps(future))
    wrong = json.loads(good.read_text())
    wrong["status"] = "exploded"
    (tmp_path / "wrong.json").write_text(json.dumps(wrong))
    (tmp_path / "list.json").write_text("[1, 2]")
    loaded = load_runs(tmp_path)
    assert [r.run_id for r in loaded.records] == [make_record().run_id]
    problems = {p.name: why for p, why in loaded.problems}
    assert set(problems) == {"trunc.json", "empty.json", "binary.json", "future.json", "wrong.json", "list.json"}
    assert "newer than this ftbench" in problems["future.json"]
    assert problems["empty.json"] == "empty file"
    assert "invalid JSON" in problems["trunc.json"]
    assert "status 'exploded'" in problems["wrong.json"]
    for why in problems.values():
        assert "\n" not in why


def test_missing_key_is_named() -> None:
    doc = make_record().to_dict()
    del doc["timing"]
    with pytest.raises(RecordError, match="missing key 'timing'"):
        parse_record(doc)
