"""Causal-LM records through the record schema (version 2, with the migration from 1) and the
reports: compare, export and the Pareto fronts show base -> tuned, forgetting and token rates.

The records in tests/fixtures/sft_runs are real: the tiny random-init Llama on generated word
problems (full, LoRA, head-only; seeds 0 and 1), written by the engine.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import pytest

from ftbench.cli import main
from ftbench.report.groups import build_comparison, flatten_record
from ftbench.report.tables import section_columns
from ftbench.results.record import SCHEMA_VERSION, RecordError, parse_record
from ftbench.results.store import load_runs

SFT_RUNS = Path(__file__).parent / "fixtures" / "sft_runs"
V1_RUNS = Path(__file__).parent / "fixtures" / "runs"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def sft_docs() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(SFT_RUNS.glob("*.json"))]


def test_version_1_records_load_through_the_migration() -> None:
    doc = json.loads(next(iter(sorted(V1_RUNS.glob("*.json")))).read_text())
    assert doc["schema_version"] == 1 and "baseline" not in doc
    record = parse_record(doc)
    assert record.schema_version == SCHEMA_VERSION == 2
    assert record.baseline is None and record.samples == []
    again = parse_record(json.loads(json.dumps(record.to_dict())))
    assert again.to_dict() == record.to_dict()


def test_sft_records_hold_base_tuned_and_samples() -> None:
    docs = sft_docs()
    assert len(docs) == 6 and all(d["schema_version"] == 2 for d in docs)
    for doc in docs:
        record = parse_record(doc)
        assert record.task == "causal-lm" and record.status == "completed"
        assert {"exact_match", "perplexity", "general_loss"} <= set(record.baseline)
        assert record.metrics["forgetting"] == pytest.approx(
            record.metrics["general_loss"] - record.baseline["general_loss"])
        assert record.samples and {"prompt", "gold", "base", "tuned"} <= set(record.samples[0])
        assert [p["stage"] for p in record.series["eval"] if "stage" in p] == ["base", "tuned"]


@pytest.mark.parametrize("change, message", [
    ({"baseline": [1, 2]}, "key 'baseline' should be dict or null, got list"),
    ({"samples": {"a": 1}}, "key 'samples' should be a list, got dict"),
    ({"samples": ["text"]}, "samples should be a list of objects"),
    ({"baseline": {"exact_match": float("inf")}}, "baseline.exact_match is infinite"),
])
def test_bad_sft_fields_are_record_errors(change: dict[str, Any], message: str) -> None:
    doc = copy.deepcopy(sft_docs()[0])
    doc.update(change)
    with pytest.raises(RecordError, match=message):
        parse_record(doc)


def test_compare_shows_base_and_tuned_forgetting_and_token_rates() -> None:
    records = load_runs(SFT_RUNS).records
    comparison = build_comparison(records)
    (section,) = comparison.sections
    results, cost = section_columns(section)
    assert [c.header for c in results] == ["steps", "base EM", "EM", "ppl", "forget"]
    assert {c.key: c.better for c in results}["metrics.perplexity"] == "min"
    assert {c.key: c.better for c in results}["metrics.forgetting"] == "min"
    headers = [c.header for c in cost]
    assert "tokens/s" in headers and "trained tok/s" in headers
    group = section.groups[0]
    assert group.n == 2 and group.stat("baseline.exact_match").n == 2
    assert group.mean("rate.trained_tokens_per_s") < group.mean("rate.tokens_per_s")
    assert section.time_front is not None and section.time_front.cost == "timing.train_s"
    assert section.to_dict()["pareto"]["time"]["points"] == 3


def test_export_carries_the_base_figures(tmp_path: Path) -> None:
    row = flatten_record(load_runs(SFT_RUNS).records[0])
    assert {"baseline.exact_match", "baseline.perplexity", "metrics.forgetting",
            "timing.trained_tokens_per_s", "timing.steady_trained_tokens_per_s"} <= set(row)
    code, out, err = cli("export", "--runs-dir", str(SFT_RUNS), "-f", "csv")
    assert code == 0, err
    header = out.splitlines()[0].split(",")
    assert header.index("baseline.exact_match") > header.index("metrics.exact_match")
    code, out, err = cli("export", "--runs-dir", str(SFT_RUNS), "-f", "md")
    assert code == 0, err
    assert "| base exact_match | exact_match | perplexity | forgetting |" in out
    assert "vs training time" in out
    code, out, err = cli("compare", "--runs-dir", str(SFT_RUNS), "--width", "160")
    assert code == 0, err
    assert "base EM" in out and "trained tok/s" in out and "forget" in out
