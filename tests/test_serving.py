"""Serving cost (engine/serving.py): sizes on disk, merged vs unmerged, reasons, causal LM."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from ftbench.engine import serving
from ftbench.engine.runner import run
from ftbench.methods import apply_method
from ftbench.models import resolve_model
from ftbench.presets import Overrides, expand, parse_preset_text
from ftbench.spec import MethodSpec, amend
from test_causal_lm_engine import sft_spec
from test_engine import tiny_spec


FEW = (("WARMUP", 1), ("REPEATS", 3), ("BATCHES", 2), ("GEN_REPEATS", 2), ("NEW_TOKENS", 5))


@pytest.fixture(autouse=True)
def few_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fewer timed calls: the tests check what is recorded, not how fast."""
    for name, value in FEW:
        monkeypatch.setattr(serving, name, value)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real runs: LoRA and full fine-tuning measuring serving, head-only not asking for it."""
    folder = tmp_path_factory.mktemp("serving-runs")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FEW:
            patch.setattr(serving, name, value)
        for method, on in (("lora", True), ("full", True), ("head-only", False)):
            spec = tiny_spec(method, steps=3)
            spec = amend(spec, train=amend(spec.train, serving=on, precision="fp32"))
            assert run(spec, runs_dir=folder).record.status == "completed"
    return folder


def _record(folder: Path, method: str) -> Any:
    from ftbench.results.store import load_runs

    return next(r for r in load_runs(folder).records if r.method == method)


def _serving_run(spec: Any, tmp_path: Path, precision: str = "fp32") -> Any:
    spec = amend(spec, train=amend(spec.train, serving=True, precision=precision))
    record = run(spec, runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    return record


def _tiny_bert(method: str, **args: Any) -> Any:
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolve_model("tiny-bert").path, num_labels=2)
    return apply_method(model, MethodSpec(name=method, args=args), "classification")


def _safetensors_bytes(model: Any) -> int:
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(f.stat().st_size for f in Path(folder).rglob("*.safetensors"))


def test_sizes_are_the_safetensors_files_and_an_adapter_is_far_smaller_than_a_checkpoint() -> None:
    before = set(Path(tempfile.gettempdir()).glob("ftbench-serving-*"))
    lora, full = _tiny_bert("lora", r=4), _tiny_bert("full")
    lora_size = serving.size_on_disk(lora, "lora")
    full_size = serving.size_on_disk(full, "full")
    assert lora_size["size_bytes"] == _safetensors_bytes(lora)
    assert full_size["size_bytes"] == _safetensors_bytes(full)
    assert lora_size["size_files"] == ["adapter_model.safetensors"]
    assert lora_size["size_bytes"] * 10 < full_size["size_bytes"]
    bitfit = serving.size_on_disk(_tiny_bert("bitfit"), "bitfit")
    from safetensors.torch import save_file  # the trainable tensors alone, saved by hand
    with tempfile.TemporaryDirectory() as folder:
        model = _tiny_bert("bitfit")
        save_file({n: p.detach() for n, p in model.named_parameters() if p.requires_grad},
                  f"{folder}/t.safetensors")
        assert bitfit["size_bytes"] == Path(f"{folder}/t.safetensors").stat().st_size
    assert bitfit["size_bytes"] < full_size["size_bytes"]
    assert set(Path(tempfile.gettempdir()).glob("ftbench-serving-*")) == before  # removed


def test_merged_lora_gives_the_unmerged_logits_and_the_base_differs(runs: Path) -> None:
    s = _record(runs, "lora").serving
    assert s["kind"] == "forward" and s["precision"] == "fp32"
    for variant in ("base", "unmerged", "merged"):
        assert s[variant]["latency_ms"] > 0 and s[variant]["samples_per_s"] > 0, variant
        assert s[f"{variant}_note"] is None
    assert s["merge_max_abs_diff"] is not None and s["merge_max_abs_diff"] < 1e-4
    # the same check by hand, on a LoRA whose update is far from zero
    model = _tiny_bert("lora", r=4)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    model.eval()
    ids = torch.randint(5, 100, (4, 12))
    with torch.no_grad():
        unmerged = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
        merged = copy.deepcopy(model).merge_and_unload()(input_ids=ids).logits
    assert torch.allclose(merged, unmerged, atol=1e-4)
    assert not torch.allclose(base, unmerged, atol=1e-3)  # the update matters: not a trivial match


@pytest.mark.parametrize("method, words", [("adapters", "not mergeable"),
                                           ("prefix", "not mergeable")])
def test_a_method_that_cannot_merge_records_why(method: str, words: str, tmp_path: Path) -> None:
    args = {"num_virtual_tokens": 4} if method == "prefix" else {}
    record = _serving_run(tiny_spec(method, steps=2, **args), tmp_path)
    s = record.serving
    assert s["merged"] is None and s["merged_note"].startswith(words)
    assert s["merge_max_abs_diff"] is None
    assert s["unmerged"]["latency_ms"] > 0
    if method == "prefix":   # peft: the model without its prefix
        assert s["base"]["latency_ms"] > 0
    else:
        assert s["base"] is None and s["base_note"].startswith("not measured")


def test_causal_lm_records_time_to_first_token_and_tokens_per_second(tmp_path: Path) -> None:
    general = tmp_path / "general.txt"
    general.write_text("\n".join(f"The river {i} runs past the old mill." for i in range(20)))
    record = _serving_run(sft_spec(str(general), "lora"), tmp_path)
    s = record.serving
    assert s["kind"] == "generate" and s["new_tokens"] == 5
    for variant in ("base", "unmerged", "merged"):
        v = s[variant]
        assert v["ttft_ms"] > 0 and v["tokens_per_s"] > 0 and v["batch_tokens_per_s"] > 0, variant
    assert s["merge_max_abs_diff"] < 1e-3
    assert s["size_bytes"] > 0 and s["size_files"] == ["adapter_model.safetensors"]


def test_full_fine_tuning_ships_a_checkpoint_and_has_nothing_to_merge(runs: Path) -> None:
    lora, full = _record(runs, "lora").serving, _record(runs, "full").serving
    assert full["size_files"] == ["model.safetensors"] and full["size_of"].startswith("full")
    assert lora["size_bytes"] * 10 < full["size_bytes"]
    assert full["merged"] is None and full["merged_note"].startswith("not applicable")
    assert full["base"] is None and full["base_note"].startswith("not measured")
    assert full["unmerged"]["latency_ms"] > 0


def test_off_by_default_and_turned_on_by_the_preset_or_the_flag(runs: Path) -> None:
    assert _record(runs, "head-only").serving is None
    text = """
title = "t"
description = "d"
reproduces = "none"
model = "tiny-bert"
task = "classification"
[data]
name = "synthetic-sentiment"
[train]
max_steps = 2
{serving}
[[methods]]
name = "lora"
"""
    plain = parse_preset_text(text.format(serving=""), default_name="p")
    on = parse_preset_text(text.format(serving="serving = true"), default_name="p")
    assert not expand(plain)[0].train.serving and expand(on)[0].train.serving
    assert expand(plain, Overrides(serving=True))[0].train.serving
    assert not expand(on, Overrides(serving=False))[0].train.serving
    from ftbench.errors import FtbenchError

    with pytest.raises(FtbenchError, match="serving"):
        parse_preset_text(text.format(serving='serving = "yes"'), default_name="p")


def test_the_run_flag_reaches_the_overrides() -> None:
    from ftbench.cli import _overrides, build_parser

    parser = build_parser()
    for argv, expected in (([], None), (["--serving"], True), (["--no-serving"], False)):
        args = parser.parse_args(["run", "--preset", "quickstart", *argv])
        assert _overrides(args).serving is expected


def _cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    from ftbench.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(argv))
    return code, out.getvalue()


def test_compare_shows_a_serving_table_and_fronts_beside_a_run_without_serving(runs: Path) -> None:
    code, text = _cli("compare", "--runs-dir", str(runs), "--width", "160")
    assert code == 0
    table = text[text.index("— serving"):]
    assert "size" in table and "b1 ms base" in table and "samples/s merged" in table
    rows = {line.split()[0]: line for line in table.splitlines()[:12]
            if line.strip().startswith(("lora", "full", "head-only"))}
    assert set(rows) == {"lora", "full", "head-only"}   # the run without serving: dashes
    assert rows["head-only"].split()[2:] == ["-"] * 7
    assert rows["full"].split()[3] == "-"               # no base for full fine-tuning
    assert "Pareto front, accuracy vs latency ms (b1)" in text
    assert "Pareto front, accuracy vs size on disk MB" in text
    code, doc = _cli("compare", "--runs-dir", str(runs), "--json")
    pareto = json.loads(doc)["sections"][0]["pareto"]
    assert pareto["latency"]["cost"] == "serving.latency_ms" and pareto["latency"]["points"] == 2
    assert pareto["size"]["points"] == 2


def test_export_carries_the_serving_columns(runs: Path) -> None:
    import csv
    import io

    code, text = _cli("export", "--runs-dir", str(runs), "--format", "csv")
    assert code == 0
    rows = {r["method"]: r for r in csv.DictReader(io.StringIO(text))}
    lora = _record(runs, "lora").serving
    assert int(float(rows["lora"]["serving.size_bytes"])) == lora["size_bytes"]
    assert float(rows["lora"]["serving.merged.latency_ms"]) == lora["merged"]["latency_ms"]
    assert rows["full"]["serving.merged_note"].startswith("not applicable")
    assert rows["head-only"]["serving.size_bytes"] == ""
    code, md = _cli("export", "--runs-dir", str(runs), "--format", "md")
    assert "#### test: serving" in md and "| b1 ms merged |" in md
    assert "Pareto front, accuracy vs size on disk" in md
    code, doc = _cli("export", "--runs-dir", str(runs), "--format", "json")
    by_method = {r["method"]: r for r in json.loads(doc)}
    assert by_method["lora"]["serving"] == lora and by_method["head-only"]["serving"] is None


def test_a_record_written_before_serving_existed_loads_and_compares() -> None:
    from ftbench.report.groups import build_comparison
    from ftbench.results.store import load_runs

    old = sorted(Path(__file__).parent.joinpath("fixtures", "runs").glob("*.json"))
    assert old and all("serving" not in json.loads(p.read_text()) for p in old)
    loaded = load_runs(Path(__file__).parent / "fixtures" / "runs")
    assert loaded.records and all(r.serving is None for r in loaded.records)
    comparison = build_comparison(loaded.records)
    assert all(s.latency_front is None and s.size_front is None for s in comparison.sections)
    from ftbench.report.tables import serving_table

    assert all(serving_table(s) is None for s in comparison.sections)



def test_the_runs_memory_peak_is_read_before_serving_copies_the_model(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Merging copies the model: that is a serving cost, not the run's peak (plan vs measured
    holds the peak against the plan), so the peak is in the record before serving starts."""
    from ftbench.engine import train

    memory: dict[str, Any] = {}
    seen: dict[str, Any] = {}
    original_train, original_measure = train.train, train.measure_run

    def keep_memory(session: Any, *args: Any) -> Any:
        memory.update(record=session.record.memory)
        return original_train(session, *args)

    def watched(*args: Any) -> Any:
        seen["peak_rss_mb"] = memory["record"].get("process_peak_rss_mb")
        return original_measure(*args)

    monkeypatch.setattr(train, "train", keep_memory)
    monkeypatch.setattr(train, "measure_run", watched)
    record = _serving_run(tiny_spec("lora", steps=2), tmp_path)
    assert record.serving is not None
    assert seen["peak_rss_mb"] is not None and seen["peak_rss_mb"] > 0
    assert record.memory["process_peak_rss_mb"] == seen["peak_rss_mb"]
