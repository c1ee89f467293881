"""A preset's runs that share tokenizer, data and max length tokenise the data once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ftbench.engine.runner import run
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams
from ftbench.tasks import reuse
from ftbench.tasks.reuse import TokenCache, fingerprint


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    reuse.SHARED.clear()
    yield
    reuse.SHARED.clear()


def test_the_cache_keeps_the_recent_copies_within_its_budget() -> None:
    cache = TokenCache(max_entries=2, max_tokens=100)
    made: list[str] = []

    def make(name: str, size: int = 10) -> Any:
        def build() -> tuple[str, int]:
            made.append(name)
            return name, size
        return build

    def tokens(value: tuple[str, int]) -> int:
        return value[1]

    assert cache.get_or_make("a", make("a"), tokens) == (("a", 10), False)
    assert cache.get_or_make("a", make("a"), tokens) == (("a", 10), True)
    cache.get_or_make("b", make("b"), tokens)
    cache.get_or_make("a", make("a"), tokens)              # a is now the most recent
    cache.get_or_make("c", make("c"), tokens)              # two entries at most: b goes
    assert cache.get_or_make("a", make("a"), tokens)[1] is True
    assert cache.get_or_make("b", make("b"), tokens)[1] is False
    assert made == ["a", "b", "c", "b"]
    cache.get_or_make("big", make("big", 500), tokens)      # over the token budget: kept alone
    assert len(cache) == 1 and cache.get_or_make("big", make("big", 500), tokens)[1] is True


def test_a_fingerprint_follows_the_content() -> None:
    assert fingerprint(["a", "b"], [0, 1]) == fingerprint(["a", "b"], [0, 1])
    assert fingerprint(["a", "b"], [0, 1]) != fingerprint(["a", "b"], [1, 0])
    assert fingerprint(["ab"], [0]) != fingerprint(["a", "b"], [0])


def spec(method: str = "full", seed: int = 1, **data: Any) -> RunSpec:
    return RunSpec(preset="p", model="tiny-bert", task="classification",
                   data=DataSpec(**{"name": "synthetic-sentiment", "train_size": 16, "eval_size": 8,
                                    **data}),
                   train=TrainParams(epochs=None, max_steps=1, batch_size=8, max_length=32,
                                     logging_steps=1, precision="fp32"),
                   method=MethodSpec(name=method), seed=seed)


def reused(s: RunSpec, tmp_path: Path) -> bool:
    record = run(s, runs_dir=tmp_path).record
    assert record.status == "completed", record.error
    return bool(record.data_info["tokens_reused"])


def test_methods_on_the_same_data_share_one_tokenised_copy(tmp_path: Path) -> None:
    first = run(spec("full"), runs_dir=tmp_path).record
    second = run(spec("bitfit"), runs_dir=tmp_path).record
    assert first.data_info["tokens_reused"] is False and second.data_info["tokens_reused"] is True
    # the data described the same way, whichever run tokenised it
    same = ("train_size", "eval_size", "mean_train_tokens", "train_label_counts", "truncated_train")
    assert {k: first.data_info[k] for k in same} == {k: second.data_info[k] for k in same}
    # another max length, or data drawn with another seed, is tokenised afresh
    assert not reused(replace(spec("full"), train=replace(spec().train, max_length=24)), tmp_path)
    assert not reused(spec("full", seed=2), tmp_path)


def test_seeds_share_a_copy_when_their_data_is_the_same(tmp_path: Path) -> None:
    bundled = {"name": "rotten_tomatoes", "source": "bundled", "options": {"split_seed": 7}}
    assert not reused(spec("full", seed=1, **bundled), tmp_path)
    assert reused(spec("full", seed=2, **bundled), tmp_path)   # one split for every seed


def test_qa_windows_are_shared_too(tmp_path: Path) -> None:
    qa = RunSpec(preset="p", model="tiny-bert", task="qa",
                 data=DataSpec(name="synthetic-qa", train_size=8, eval_size=6, options={"doc_stride": 16}),
                 train=TrainParams(epochs=None, max_steps=1, batch_size=4, max_length=48,
                                   logging_steps=1, precision="fp32"),
                 method=MethodSpec(name="full"), seed=3)
    first = run(qa, runs_dir=tmp_path).record
    second = run(replace(qa, method=MethodSpec(name="bitfit")), runs_dir=tmp_path).record
    assert first.data_info["tokens_reused"] is False and second.data_info["tokens_reused"] is True
    assert first.data_info["eval_windows"] == second.data_info["eval_windows"]
    other_stride = replace(qa, data=replace(qa.data, options={"doc_stride": 8}))
    assert run(other_stride, runs_dir=tmp_path).record.data_info["tokens_reused"] is False


def test_the_lever_turns_reuse_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTBENCH_LEVERS_OFF", "prepared_cache")
    assert not reused(spec("full"), tmp_path)
    assert not reused(spec("bitfit"), tmp_path)
    assert len(reuse.SHARED) == 0
