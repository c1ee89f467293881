"""docs/cpu-speed.md quotes benchmarks/cpu_speed.py's kept output: every figure on the page is
recomputed here from docs/cpu-speed/quickstart-3-seeds.json and
docs/cpu-speed/imdb-strategies-smoke.json."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_page_quotes_its_json() -> None:
    [rep] = json.loads((DOCS / "cpu-speed" / "quickstart-3-seeds.json").read_text())
    page = (DOCS / "cpu-speed.md").read_text(encoding="utf-8")
    before, after = rep["before"], rep["after"]
    assert f"{before['train_eval_s']:.1f} s | {after['train_eval_s']:.1f} s" in page
    assert f"**{after['train_eval_s'] / before['train_eval_s']:.3f}**" in page
    assert f"{before['wall_s']:.1f} s | {after['wall_s']:.1f} s" in page
    for arm in (before, after):
        per_seed: dict[int, float] = defaultdict(float)
        metric: dict[str, list[str]] = defaultdict(list)
        for run in arm["runs"]:
            per_seed[run["seed"]] += run["train_s"] + run["eval_s"]
            metric[run["method"]].append(f"{run['metric']:.4f}")
        assert " / ".join(f"{per_seed[s]:.1f}" for s in sorted(per_seed)) in page
        for values in metric.values():
            assert " / ".join(values) in page


def test_the_smoke_check_section_quotes_its_json() -> None:
    [rep] = json.loads((DOCS / "cpu-speed" / "imdb-strategies-smoke.json").read_text())
    page = (DOCS / "cpu-speed.md").read_text(encoding="utf-8")
    before, after = rep["before"], rep["after"]
    assert f"| {before['wall_s']:.1f} s | {after['wall_s']:.1f} s | " \
           f"**{after['wall_s'] / before['wall_s']:.3f}** |" in page
    assert f"| {before['train_eval_s']:.1f} s | {after['train_eval_s']:.1f} s | " \
           f"{after['train_eval_s'] / before['train_eval_s']:.3f} |" in page
    assert f"| {before['cpu_s']:.1f} s | {after['cpu_s']:.1f} s | {after['cpu_s'] / before['cpu_s']:.3f} |" in page
    for arm in (before, after):
        assert " / ".join(f"{run['eval_s']:.1f}" for run in arm["runs"]) + " s" in page
    assert after["wall_s"] <= before["wall_s"] / 2   # what issue 25 asked
