"""The comparison of a --tune sweep (ftbench.report.tuning, ftbench.report.stats): trials kept
out of the tables, tuned finals apart from untuned runs, ties by a bootstrap over seeds, the
sensitivity chart."""

from __future__ import annotations

import io

from rich.console import Console

from ftbench.report.groups import build_comparison
from ftbench.report.stats import difference_interval, tied
from ftbench.report.tables import section_tables
from ftbench.report.tuning import sensitivity_chart, tuned_methods, tuning_lines
from ftbench.results.record import RunRecord


def rec(method: str, seed: int, acc: float, lr: float, role: str | None = None, study: str = "",
        status: str = "completed") -> RunRecord:
    spec = {"preset": "p", "model": "m", "task": "classification", "seed": seed,
            "data": {"name": "d"}, "learning_rate": lr, "method": {"name": method}}
    if role:
        spec["tune"] = {"role": role, "study": study or f"p-{method}", "params": {"learning_rate": lr},
                        "validation": {"metric": "accuracy", "value": 0.8},
                        "sweep": {"trials": 3, "seconds": 72.0, "device_hours": {"cpu": 0.02}}}
    return RunRecord(run_id=f"r-{method}-{role}-{seed}-{lr}", preset="p", method=method, status=status,
                     created_at="2026-12-07T00:00:00+00:00", spec=spec,
                     metrics={"accuracy": acc} if status == "completed" else {})


def render(renderable: object, width: int = 100) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def sweep() -> list[RunRecord]:
    out = []
    for lr, acc in ((1e-4, 0.70), (1e-3, 0.80), (1e-2, 0.60)):
        out.append(rec("lora", 7, acc, lr, "trial"))
    for lr, acc in ((1e-5, 0.75), (1e-4, 0.78)):
        out.append(rec("full", 7, acc, lr, "trial"))
    out.append(rec("full", 7, 0.0, 1e-3, "trial", status="diverged"))
    out += [rec("lora", s, a, 1e-3, "final") for s, a in ((7, 0.81), (8, 0.80), (9, 0.82))]
    out += [rec("full", s, a, 1e-4, "final") for s, a in ((7, 0.80), (8, 0.83), (9, 0.81))]
    out += [rec("head-only", s, a, 1e-2, "final", study="p-head") for s, a in ((7, 0.60), (8, 0.61), (9, 0.59))]
    out += [rec("lora", s, a, 5e-3) for s, a in ((7, 0.52), (8, 0.51))]  # untuned, the default rate
    return out


def test_bootstrap_interval_ties_close_seeds_and_separates_far_ones() -> None:
    assert tied([0.80, 0.83, 0.81], [0.81, 0.80, 0.82]) is True
    assert tied([0.80, 0.83, 0.81], [0.60, 0.61, 0.59]) is False
    assert tied([0.8], [0.7, 0.71]) is None  # one seed: not judged
    lo, hi = difference_interval([1.0, 1.0], [0.0, 0.0])
    assert lo == hi == 1.0
    assert difference_interval([0.1, 0.5, 0.9], [0.2, 0.4]) == difference_interval([0.1, 0.5, 0.9], [0.2, 0.4])


def test_trials_are_left_out_of_comparisons_and_tuned_runs_kept_apart() -> None:
    comparison = build_comparison(sweep())
    (section,) = comparison.sections
    names = sorted(g.name for g in section.groups)
    assert names == ["full (tuned)", "head-only (tuned)", "lora", "lora (tuned) ≈"]
    assert sum(len(g.runs) for g in section.groups) == 11  # no trial among them
    text = "".join(render(t) for t in section_tables(section, 100))
    assert "lora (tuned) ≈" in text and "bootstrap interval" in text
    assert "head-only (tuned) ≈" not in text


def test_tuning_summary_per_method() -> None:
    methods = {m.method: m for m in tuned_methods(sweep())}
    lora = methods["lora"]
    assert lora.params == {"learning_rate": 1e-3} and lora.tuned.n == 3
    assert round(lora.tuned.mean, 4) == 0.81 and lora.default is not None and lora.default.n == 2
    assert lora.default_rate == 5e-3 and lora.tied is True
    assert methods["full"].best and methods["head-only"].tied is False
    assert [s for _, _, s in methods["full"].curve] == ["completed", "completed", "diverged"]
    text = "".join(render(x, 160) if not isinstance(x, str) else x for x in tuning_lines(sweep(), 100, 18, True))
    assert "lr 0.001" in text and "3 trials, 0.020 CPU h" in text
    assert "0.5150 ± 0.0071 (n=2) at lr 0.005" in text
    assert "full 0.001: diverged" in text


def test_sensitivity_chart_has_a_log_axis_and_a_line_per_method() -> None:
    chart = sensitivity_chart(tuned_methods(sweep()), 90, 18, colorless=True)
    assert "learning rate (log)" in chart and "1e-4" in chart and "1e-3" in chart
    assert "lora" in chart and "full" in chart
    assert sensitivity_chart([], 90, 18) == ""
