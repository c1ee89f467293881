"""Reliability: causal-LM run files mutated, truncated and fuzzed like every other record
(tests/test_reliability_runs.py). Their new fields (``baseline``, ``samples``, the stage
points in ``series.eval``) must load or be skipped with one line, and every view of the folder
(runs, compare, export) must keep working and print no traceback.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftbench.results.record import RecordError, parse_record
from ftbench.results.store import load_file, load_runs
from test_reliability_runs import CATEGORY, _has_nan, every_view, mutate

SFT = sorted((Path(__file__).parent / "fixtures" / "sft_runs").glob("*.json"))
SFT_DOCS = [json.loads(p.read_text()) for p in SFT]
KEEP = SFT[:3]
KEEP_IDS = {p.stem for p in KEEP}

HOSTILE: dict[str, Any] = {
    "samples-strings": {"samples": [{"prompt": "\x1b[2J\x1b[31mred", "gold": ["not", "text"],
                                     "base": 42, "tuned": None, "base_correct": "yes"}]},
    "samples-deep": {"samples": [{"prompt": {"a": {"b": [1, 2, {"c": None}]}}}]},
    "baseline-strings": {"baseline": {"exact_match": "high", "measured_on": ["x"]}},
    "baseline-empty": {"baseline": {}},
    "eval-stage-odd": {"series": {"train": [], "eval": [{"step": "0", "stage": 7,
                                                         "exact_match": None}], "gpu": []}},
}


def _folder(root: Path) -> Path:
    folder = root / "runs"
    folder.mkdir()
    for path in KEEP:
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_hostile_sft_fields_load_or_skip_and_every_view_works(tally: Any, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    bad: set[str] = set()
    for i, (name, change) in enumerate(HOSTILE.items()):
        doc = copy.deepcopy(SFT_DOCS[3])
        doc.update(change)
        doc["run_id"] = f"{doc['run_id']}-{i}"
        path = folder / f"{name}.json"
        path.write_text(json.dumps(doc))
        with tally.case(CATEGORY, expected=(RecordError,)):
            try:
                load_file(path)
            except RecordError as exc:
                assert "\n" not in str(exc)
                bad.add(path.name)
    every_view(tally, folder, KEEP_IDS, bad, charts=True)
    # the TUI's renderables of a loaded hostile record never raise either
    from rich.console import Console

    from ftbench.tui.sft_view import base_to_tuned, comparison_table, samples_table

    for record in load_runs(folder).records:
        console = Console(width=100, file=open("/dev/null", "w"), color_system=None)
        console.print(comparison_table(record), samples_table(record))
        base_to_tuned(record)


@settings(max_examples=10, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_sft_records_never_break_the_reports(tally: Any, data: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = _folder(Path(tmp))
        for i in range(4):
            doc = SFT_DOCS[data.draw(st.integers(0, len(SFT_DOCS) - 1), label="base")]
            name = f"mutant-{i}.json"
            (folder / name).write_bytes(mutate(data, doc))
            with tally.case(CATEGORY, expected=(RecordError,)):
                try:
                    record = load_file(folder / name)
                except RecordError as exc:
                    assert "\n" not in str(exc)
                else:
                    assert parse_record(json.loads(json.dumps(record.to_dict()))).to_dict() == \
                        record.to_dict() or _has_nan(record.to_dict())
        loaded = load_runs(folder)
        skipped = {p.name for p, _ in loaded.problems}
        assert KEEP_IDS <= {r.run_id for r in loaded.records}
        every_view(tally, folder, KEEP_IDS, skipped, charts=data.draw(st.booleans(), label="charts"))
