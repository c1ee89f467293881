"""The padding collator: the same tensors as DataCollatorWithPadding, rounding when asked."""

from __future__ import annotations


import pytest
import torch
from transformers import DataCollatorWithPadding

from ftbench.engine.collate import PadCollator, pad_multiple
from ftbench.models import resolve_model
from ftbench.engine.build import load_tokenizer
from ftbench.tasks.classification import tokenize


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(resolve_model("tiny-bert").path)


def _features(tokenizer, n: int = 37):
    texts = [" ".join(["good movie"] * (i % 9 + 1)) + " the end" * (i % 4) for i in range(n)]
    return tokenize(tokenizer, texts, [i % 2 for i in range(n)], max_length=40).features


def test_identical_to_data_collator_with_padding(tokenizer) -> None:
    feats = _features(tokenizer)
    ours, theirs = PadCollator(tokenizer.pad_token_id)(feats), DataCollatorWithPadding(tokenizer)(feats)
    assert set(ours) == set(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
        assert ours[key].dtype == theirs[key].dtype


def test_qa_windows_with_positions(tokenizer) -> None:
    from ftbench.data.synthetic_qa import synthetic_qa
    from ftbench.tasks.qa_features import tokenize_qa

    train, _ = synthetic_qa(12, 2, seed=3, filler=3)
    feats = tokenize_qa(tokenizer, train, 48, 16, 64).features
    ours, theirs = PadCollator(tokenizer.pad_token_id)(feats), DataCollatorWithPadding(tokenizer)(feats)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_rounds_to_a_multiple_but_never_past_max_length(tokenizer) -> None:
    feats = _features(tokenizer)
    longest = max(len(f["input_ids"]) for f in feats)
    batch = PadCollator(tokenizer.pad_token_id, multiple=8, max_length=40)(feats)
    assert batch["input_ids"].shape[1] == min(-(-longest // 8) * 8, 40)
    assert batch["attention_mask"].sum() == sum(len(f["input_ids"]) for f in feats)
    capped = PadCollator(tokenizer.pad_token_id, multiple=64, max_length=40)(feats)
    assert capped["input_ids"].shape[1] == 40
    assert PadCollator(0, multiple=64).padded_length(65) == 128
    assert (pad_multiple("cuda", False), pad_multiple("cuda", True), pad_multiple("cpu", False)) == (8, 64, 1)
    with pytest.raises(ValueError):
        PadCollator(0, multiple=0)


def test_left_padding(tokenizer) -> None:
    feats = _features(tokenizer, 5)
    batch = PadCollator(tokenizer.pad_token_id, padding_side="left")(feats)
    shortest = min(range(5), key=lambda i: len(feats[i]["input_ids"]))
    row = batch["input_ids"][shortest].tolist()
    assert row[-len(feats[shortest]["input_ids"]):] == feats[shortest]["input_ids"]
    assert row[0] == tokenizer.pad_token_id
