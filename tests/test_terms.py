"""Shared terms defined once: text cleaning, task primary metrics, numbers, JSON, peak memory."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ftbench.tasks.info import TASK_INFO, primary_metric_in, primary_metrics, primary_value, short_name
from ftbench.terms import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, fixed, json_safe, number,
                           peak_memory)
from ftbench.text import error_line, one_line, printable


@given(st.text())
def test_printable_and_one_line_never_leave_control_characters(text: str) -> None:
    assert printable(text).isprintable()
    line = one_line(text, limit=50)
    assert line.isprintable() and len(line) <= 50 and "  " not in line and line == line.strip()


def test_text_examples() -> None:
    assert printable("a\x1b[31mb\n") == "a\\x1b[31mb\\n"
    assert printable("a\tb", "?") == "a?b"
    assert one_line("  a\n\tb  c ") == "a b c"
    assert one_line("x" * 10, limit=5) == "xxxx…"
    assert error_line(ValueError("bad\nthing")) == "bad thing"
    assert error_line(KeyError()) == "KeyError"


def test_each_task_names_its_primary_metric() -> None:
    assert primary_metrics("classification") == ("accuracy", "f1")
    assert primary_metrics("qa") == ("exact_match", "f1")
    assert primary_metrics("unknown") == ("accuracy", "exact_match", "f1")
    for info in TASK_INFO.values():
        assert info.primary[0] in info.metrics
    assert primary_metric_in("qa", {"f1", "exact_match"}) == "exact_match"
    assert primary_metric_in("qa", {"f1"}) == "f1"
    assert primary_metric_in("qa", {"accuracy"}) is None
    assert primary_value("classification", {"accuracy": 0.5, "f1": 0.4}) == ("accuracy", 0.5)
    assert primary_value("classification", {"f1": 0.4}) == ("f1", 0.4)
    assert primary_value("classification", {"accuracy": True}) == ("accuracy", None)
    assert [short_name(m) for m in ("accuracy", "exact_match", "f1", "no_answer_rate")] == \
        ["acc", "EM", "F1", "no_ans"]


def test_exit_codes() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED) == (0, 1, 2, 130)


def test_numbers() -> None:
    assert number(3) == 3.0 and number(True) is None and number(math.nan) is None and number("1") is None
    assert fixed(0.91234) == "0.912" and fixed(0.5, 4) == "0.5000" and fixed(math.inf) == "-"


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=10)


@given(json_values)
def test_json_safe_is_always_strict_json(value: Any) -> None:
    text = json.dumps(json_safe(value), allow_nan=False)
    assert json.loads(text) == json_safe(value)


def test_json_safe_nulls_non_finite_and_unwraps_numpy() -> None:
    import numpy as np

    assert json_safe({"a": [math.nan, 1.5, (math.inf, 2)], "b": np.float32(0.5), "c": np.int64(3)}) == \
        {"a": [None, 1.5, [None, 2]], "b": 0.5, "c": 3}
    assert type(json_safe(np.int64(3))) is int


def test_peak_memory_prefers_torch_then_nvml_then_rss() -> None:
    full = {"torch_peak_allocated_mb": 100.0, "nvml_peak_used_mb": 300.0, "process_peak_rss_mb": 900.0}
    assert peak_memory(full) == ("torch", 100.0)
    assert peak_memory({**full, "torch_peak_allocated_mb": None}) == ("NVML", 300.0)
    assert peak_memory({"process_peak_rss_mb": 900.0, "nvml_peak_used_mb": math.nan}) == ("RSS", 900.0)
    assert peak_memory({}) == ("", None)


def test_headless_summary_counts_nvml_like_the_tui() -> None:
    from types import SimpleNamespace

    from rich.console import Console

    from ftbench.headless import summary_table

    record = SimpleNamespace(method="lora", seed=1, status="completed", task="qa",
                             metrics={"exact_match": 0.5, "f1": 0.6}, params={"trainable": 10},
                             timing={"train_s": 1.0, "steady_samples_per_s": 2.0},
                             memory={"torch_peak_allocated_mb": None, "nvml_peak_used_mb": 1234.0,
                                     "process_peak_rss_mb": 777.0})
    console = Console(width=100, record=True)
    console.print(summary_table([record]))
    out = console.export_text()
    assert "EM" in out and "1,234" in out and "NVML" in out and "777" not in out
