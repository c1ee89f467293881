"""benchmarks/reproduce.py: its verdict rules, its plan, and the reported figures it shows.

The write-ups' figures live in one place, each preset's ``[[references]]``; these tests pin
them to SEEDS.md (copied below; checked against the file itself where it is present).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from ftbench.presets import builtin_presets, load_preset

ROOT = Path(__file__).resolve().parent.parent
SEEDS_MD = ROOT.parent / "shared" / "SEEDS.md"


def _load_script():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module
    spec.loader.exec_module(module)
    return module


reproduce = _load_script()

# SEEDS.md, "reported" column: preset -> method -> figures (accuracy as a fraction, seconds).
SEEDS = {
    "bert-synthetic": {"full": {"accuracy": 1.0, "train_s": 2.96 * 60}},
    "lora-qa": {"lora": {"exact_match": 0.387, "train_s": 4.34 * 60, "trainable_pct": 0.4}},
    "bert-sentiment": {"full": {"accuracy": 0.9015, "f1": 0.9015, "train_s": 12.78 * 60}},
    "distilbert-sentiment140": {"full": {"accuracy": 0.8386, "f1": 0.84, "train_s": 2688,
                                         "samples_per_s": 156}},
    "roberta-imdb-peft": {
        "full": {"accuracy": 1.0, "train_s": 593, "peak_mb": 2423},
        "lora": {"accuracy": 1.0, "train_s": 500, "peak_mb": 926},
        "qlora": {"accuracy": 1.0, "train_s": 233, "peak_mb": 892},
        "ia3": {"accuracy": 1.0, "train_s": 517, "peak_mb": 1239},
    },
}


@pytest.mark.parametrize("preset", sorted(SEEDS))
def test_preset_references_hold_the_figures_seeds_md_reports(preset: str) -> None:
    refs = {r.method: dict(r.metrics) for r in load_preset(preset).references}
    for method, figures in SEEDS[preset].items():
        for key, value in figures.items():
            assert refs[method][key] == pytest.approx(value, rel=1e-3), (preset, method, key)


@pytest.mark.skipif(not SEEDS_MD.is_file(), reason="SEEDS.md is not beside this checkout")
def test_the_copied_figures_appear_in_seeds_md() -> None:
    text = SEEDS_MD.read_text()
    for figure in ("2.96 min", "100 %", "38.7 %", "4.34 min", "12.78 min", "90.15 %",
                   "83.86 %", "2,688 s", "156 samples/s", "2,423 MB", "926 MB", "892 MB",
                   "1,239 MB", "593 s", "500 s", "233 s", "517 s"):
        assert figure in text, figure


def test_the_plan_covers_every_preset_but_the_quickstart() -> None:
    assert {e.preset for e in reproduce.PLAN} == set(builtin_presets()) - {"quickstart"}
    for entry in reproduce.PLAN:  # a reduced CPU run always says so
        assert bool(entry.cpu_args) == bool(entry.cpu_why), entry.preset


def test_commands_are_offline_and_only_the_cpu_plan_shrinks(tmp_path: Path) -> None:
    entry = next(e for e in reproduce.PLAN if e.preset == "imdb-strategies")
    cpu = reproduce.command(entry, tmp_path, gpu=False, tiny=False)
    gpu = reproduce.command(entry, tmp_path, gpu=True, tiny=False)
    assert "--offline" in cpu and "--offline" in gpu
    assert "--train-size" in cpu and "--train-size" not in gpu
    assert cpu[cpu.index("--seeds") + 1] == "3"


def _verdict(**kw):
    base = dict(metric="metrics.accuracy", reported=0.9, measured=0.9, dataset="imdb",
                substitutions=[], reduced="")
    return reproduce.verdict(**{**base, **kw})


def test_verdicts_in_plain_words() -> None:
    assert _verdict(measured=0.905) == "reproduced within 1 pt"
    assert _verdict(measured=0.85) == "lower by 5.0 pt"
    assert _verdict(measured=0.93).startswith("higher by 3.0 pt")
    swapped = _verdict(measured=0.85, substitutions=[
        "model bert-base-uncased (hub) replaced by minilm-l6"], reduced="reduced")
    assert swapped == "lower by 5.0 pt (swapped model bert-base-uncased -> minilm-l6; reduced size)"
    assert _verdict(reported=1.0, dataset="synthetic-sentiment").startswith(
        "write-up's 100 % not credible: its synthetic reviews were separable")
    assert "real reviews" in _verdict(reported=1.0, dataset="imdb")
    assert _verdict(reported=None).startswith("no accuracy reported")
    assert re.search(r"0\.33 % measured vs ~1\.5 % reported",
                     _verdict(reported=None, trainable_pct=(1.5, 0.33)))
    assert _verdict(measured=None) == "not measured"
    assert _verdict(reported=None, measured=0.52).endswith(
        "measured only - at chance level: too little training at this size to judge the method")
