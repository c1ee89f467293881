"""Preset parsing, strict validation and expansion into RunSpecs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftbench.errors import PresetError
from ftbench.presets import (Overrides, builtin_presets, expand, find_preset, load_preset,
                             parse_preset_file, parse_preset_text, runnable_here)

SEED_PRESETS = {"quickstart", "bert-synthetic", "lora-qa", "bert-sentiment", "peft-synthetic",
                "imdb-strategies", "distilbert-sentiment140", "roberta-imdb-peft"}

GOOD = """
title = "t"
description = "d"
reproduces = "r"
model = "tiny-bert"
task = "classification"

[data]
name = "synthetic-sentiment"
train_size = 64
eval_size = 32

[train]
max_steps = 4
batch_size = 8

[[methods]]
name = "lora"
args = { r = 4 }

[[methods]]
name = "full"
"""


# decoder (causal-lm) presets: docs/decoders.md
DECODER_PRESETS = {"sft-quickstart", "metamath-gsm8k", "qlora-memory"}


def test_every_seed_experiment_has_a_valid_preset() -> None:
    assert set(builtin_presets()) == SEED_PRESETS | DECODER_PRESETS
    for name in SEED_PRESETS | DECODER_PRESETS:
        preset = load_preset(name)
        assert preset.name == name
        assert preset.methods and preset.title and preset.reproduces


def test_seed_presets_carry_the_write_ups_figures() -> None:
    roberta = load_preset("roberta-imdb-peft")
    assert [m.name for m in roberta.methods] == ["full", "lora", "qlora", "ia3"]
    refs = {r.method: r.metrics for r in roberta.references}
    assert refs["qlora"]["train_s"] == 233 and refs["lora"]["peak_mb"] == 926
    assert roberta.train.gradient_checkpointing is True
    lora = {m.name: m for m in roberta.methods}["lora"]
    assert lora.args == {"r": 8, "alpha": 16, "dropout": 0.1}
    d = load_preset("distilbert-sentiment140")
    assert d.data.eval_size == 60000 and d.train.epochs == 3.0
    assert {r.method: r.metrics for r in d.references}["full"]["accuracy"] == 0.8386
    qa = load_preset("lora-qa")
    assert qa.task == "qa" and qa.methods[0].args["r"] == 16


def test_find_preset_by_path_and_unknown(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    assert find_preset(str(path)) == path
    assert load_preset(str(path)).name == "mine"
    with pytest.raises(PresetError, match="unknown preset 'nope'.*quickstart"):
        find_preset("nope")
    with pytest.raises(PresetError, match="no such preset file"):
        find_preset(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[train]", "[train]\nbatchsize = 3"),
         r"train.batchsize: unknown key \(allowed: epochs, max_steps, batch_size"),
        (("batch_size = 8", 'batch_size = "8"'),
         r"train.batch_size: expected an integer >= 1 and <= 65,536 or .auto., got a string '8'"),
        (("batch_size = 8", "batch_size = 0"), r"train.batch_size: 0 is out of range"),
        (("max_steps = 4", "max_steps = -5"), r"train.max_steps: -5 is out of range; expected an integer >= 1"),
        (("[train]", "[train]\nlearning_rate = 1e9"), r"train.learning_rate: 1000000000.0 is out of range"),
        (("[train]", "[train]\nmax_length = 1000000"), r"train.max_length: 1000000 is out of range"),
        (("[train]", "[train]\nlearning_rate = nan"), r"train.learning_rate: expected a finite number"),
        (('name = "lora"', 'name = "lorra"'),
         r"methods\[0\].name: unknown method 'lorra' \(did you mean 'lora'\?\) \(known: full, head-only"),
        (("r = 4", "r = 0"), r"methods\[0\].args: .*'r'"),
        (("r = 4", "rank = 4"), r"methods\[0\].args: .*unknown.*'rank'"),
        (('task = "classification"', 'task = "generation"'),
         r"task: 'generation' is not allowed; expected one of 'classification', 'qa'"),
        (('title = "t"\n', ""), r"title: missing; expected a string"),
        (('name = "synthetic-sentiment"', 'name = "mnist"'), r"data.name: unknown dataset 'mnist'"),
        (("max_steps = 4", "shuffle = true"), r"train.shuffle: unknown key"),
        (('name = "full"', 'name = "lora"'), r"methods\[1\].name: method 'lora' appears twice"),
        (("[[methods]]\nname = \"lora\"", "[[methodz]]\nname = \"lora\""), r"methodz: unknown key"),
        (('model = "tiny-bert"', "model = 3"), r"model: expected a string, got an integer 3"),
        (("max_steps = 4", ""), r"train: set epochs or max_steps"),
        (("eval_size = 32", "eval_size = 32\n[data]"), r"invalid TOML"),
    ],
)
def test_bad_presets_give_one_line_naming_file_and_key(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    old, new = edit
    assert old in GOOD
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(PresetError) as info:
        parse_preset_file(path)
    text = str(info.value)
    assert text.startswith(str(path) + ": ")
    assert "\n" not in text
    import re
    assert re.search(message, text), text


def test_non_utf8_and_huge_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.toml"
    junk.write_bytes(b"title = \"\xff\xfe\"\n")
    with pytest.raises(PresetError, match="not UTF-8"):
        parse_preset_file(junk)
    huge = tmp_path / "huge.toml"
    huge.write_text(GOOD + "#" * (1024 * 1024 + 10))
    with pytest.raises(PresetError, match="a preset is at most"):
        parse_preset_file(huge)


def test_expand_methods_seeds_and_overrides() -> None:
    preset = parse_preset_text(GOOD, default_name="p")
    specs = expand(preset, Overrides(seeds=2))
    assert [(s.method.name, s.seed) for s in specs] == [("lora", 42), ("lora", 43), ("full", 42), ("full", 43)]
    assert specs[0].method.args == {"r": 4}
    only = expand(preset, Overrides(methods=("full",), max_steps=2, model="tiny-roberta"))
    assert [s.method.name for s in only] == ["full"]
    assert only[0].train.max_steps == 2 and only[0].model == "tiny-roberta"
    with pytest.raises(PresetError, match="unknown method 'nope'"):
        expand(preset, Overrides(methods=("nope",)))


def test_offline_swaps_hub_model_and_dataset_and_says_so() -> None:
    preset = load_preset("distilbert-sentiment140")
    spec = expand(preset, Overrides(offline=True, max_steps=5))[0]
    assert spec.model == "minilm-l6"
    assert spec.data.name == "tweets"
    assert any("distilbert-base-uncased" in s for s in spec.substitutions)
    assert any("sentiment140" in s and "tweets" in s for s in spec.substitutions)
    assert spec.train.max_steps == 5


def test_runnable_here_words() -> None:
    assert runnable_here(load_preset("quickstart")) == "offline"
    assert runnable_here(load_preset("bert-sentiment")).startswith("hub (or --offline)")
