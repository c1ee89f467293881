"""Instruction data for the causal-lm task: the generated word problems, local files, answer
extraction and the prompt templates (no model needed beyond a character tokenizer)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ftbench.data.math_problems import Difficulty, generate
from ftbench.data.sft_sources import (
    SFTExample,
    alpaca_row,
    carve,
    general_texts,
    gsm8k_answer,
    gsm8k_row,
    load_sft,
    metamath_row,
    read_pairs,
)
from ftbench.errors import DataUnavailable, FtbenchError
from ftbench.spec import DataSpec
from ftbench.tasks.causal_lm_eval import extract_answer, same_answer, samples_record
from ftbench.tasks.sft_format import (
    Formatter,
    SFTSettings,
    TemplateError,
    template_kind,
)

_STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")


def test_problems_are_deterministic_and_disjoint() -> None:
    train, evald = generate(300, 60, seed=7)
    again_train, again_eval = generate(300, 60, seed=7)
    assert [p.prompt for p in train] == [p.prompt for p in again_train]
    assert [p.prompt for p in evald] == [p.prompt for p in again_eval]
    assert not {p.prompt for p in train} & {p.prompt for p in evald}
    assert len({p.prompt for p in train}) == 300
    other, _ = generate(300, 60, seed=8)
    assert [p.prompt for p in other] != [p.prompt for p in train]


def test_every_worked_step_is_correct_and_ends_in_the_answer() -> None:
    train, evald = generate(400, 100, seed=1, difficulty=Difficulty(1, 3))
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": lambda a, b: a // b}
    for p in train + evald:
        steps = _STEP.findall(p.response)
        assert len(steps) == p.operations and 1 <= p.operations <= 3
        value = None
        for a, op, b, result in steps:
            a, b, result = int(a), int(b), int(result)
            assert value is None or a == value
            if op == "/":
                assert a % b == 0
            assert ops[op](a, b) == result >= 0
            value = result
        assert p.response.endswith(f"#### {p.answer}") and value == p.answer
        assert gsm8k_answer(p.response) == str(p.answer)


def test_difficulty_bounds_the_operations() -> None:
    train, _ = generate(200, 10, seed=3, difficulty=Difficulty(2, 2, 20, ("add", "sub")))
    for p in train:
        assert p.operations == 2 and "*" not in p.response and "/" not in p.response
        assert int(re.search(r"has (\d+)", p.prompt).group(1)) <= 20


@pytest.mark.parametrize("options, message", [
    ({"max_ops": 4}, "max_ops must be an integer from 1 to 3"),
    ({"min_ops": 3, "max_ops": 2}, "min_ops (3) is above max_ops (2)"),
    ({"operations": ["pow"]}, "operations must be a non-empty list"),
    ({"max_start": True}, "max_start must be an integer"),
])
def test_bad_difficulty_is_one_line(options: dict, message: str) -> None:
    with pytest.raises(DataUnavailable, match=re.escape(message)):
        Difficulty.from_options(options)


def test_load_sft_math_problems_and_offline_standins() -> None:
    data = load_sft(DataSpec(name="math-problems", train_size=20, eval_size=5), seed=1, offline=True)
    assert len(data.train) == 20 and len(data.eval) == 5 and data.checkable
    hub = load_sft(DataSpec(name="gsm8k", train_size=8, eval_size=4), seed=1, offline=True)
    assert "math-problems stand in" in hub.notes[0] and len(hub.eval) == 4


@pytest.mark.parametrize("text, expected", [
    ("so 3 + 4 = 7\n#### 7", "7"),
    ("#### 1,234", "1234"),
    ("#### $12.00", "12"),
    ("The answer is: 42", "42"),
    ("She has 5 apples, then 9 apples.", "9"),
    ("#### -3", "-3"),
    ("no number here", None),
    ("#### 2.50 dollars", "2.5"),
])
def test_answer_extraction_follows_gsm8k(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_same_answer_compares_numbers() -> None:
    assert same_answer("1234", "1,234") and same_answer("12", "12.0")
    assert not same_answer(None, "3") and not same_answer("4", "3")


def test_samples_record_pairs_base_and_tuned() -> None:
    rows = samples_record(["p1", "p2"], ["7", "3"], ["#### 7", "I think 5"], ["#### 7", "#### 3"])
    assert [(r["base_correct"], r["tuned_correct"]) for r in rows] == [(True, True), (False, True)]
    before = samples_record(["p1"], ["7"], ["#### 8"], None)
    assert before[0]["tuned"] is None and before[0]["tuned_correct"] is None


def test_hub_rows_map_to_examples() -> None:
    ex = gsm8k_row({"question": "Q?", "answer": "2 + 2 = 4\n#### 4"})
    assert (ex.prompt, ex.answer) == ("Q?", "4")
    assert metamath_row({"query": "q", "response": "The answer is: 5"}).answer is None
    assert alpaca_row({"instruction": "Do", "input": "this", "output": "ok"}).prompt == "Do\n\nthis"


def test_local_files_need_prompt_and_response_columns(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps({"prompt": f"q{i}", "response": f"a\n#### {i}"})
                              for i in range(10)))
    rows = read_pairs(good, {})
    assert len(rows) == 10 and rows[3].answer == "3"
    bad = tmp_path / "bad.csv"
    bad.write_text("question,answer\nq,a\n")
    with pytest.raises(DataUnavailable, match="has no column 'prompt'.*prompt and response columns"):
        read_pairs(bad, {})
    renamed = read_pairs(bad, {"prompt_column": "question", "response_column": "answer"})
    assert renamed == [SFTExample("q", "a", None)]
    data = load_sft(DataSpec(name="file", path=str(good), eval_size=3), seed=0, offline=True)
    assert len(data.eval) == 3 and len(data.train) == 7
    assert not {e.prompt for e in data.eval} & {e.prompt for e in data.train}


def test_carve_keeps_eval_prompts_out_of_training() -> None:
    pool = [SFTExample(f"p{i % 30}", "r") for i in range(40)]   # 10 duplicated prompts
    train, evald, notes = carve(pool, None, 5, seed=2)
    assert len(evald) == 5 and len(train) == 25 and "10 duplicate prompts dropped" in notes[0]


def test_general_text_from_a_file_and_none(tmp_path: Path) -> None:
    path = tmp_path / "general.txt"
    path.write_text("\n".join(f"line {i} of plain text" for i in range(100)))
    texts, source = general_texts({"general_text": str(path), "general_size": 10}, offline=True)
    assert len(texts) == 10 and source.startswith("local file")
    assert texts == general_texts({"general_text": str(path), "general_size": 10}, offline=True)[0]
    assert general_texts({"general_text": "none"}, offline=True) == ([], "none")
    with pytest.raises(DataUnavailable, match="general_size must be a positive integer"):
        general_texts({"general_size": 0}, offline=True)


# --- templates and settings ------------------------------------------------------------------

@pytest.fixture(scope="module")
def chars():
    pytest.importorskip("tokenizers")
    from ftbench.lm_models import char_tokenizer

    return char_tokenizer()


def test_plain_template_masks_the_prompt(chars) -> None:
    fmt = Formatter(chars, "plain")
    ids, labels, n = fmt.example("2+2?", "4\n#### 4", "response")
    assert chars.decode(ids[:n]) == "Question: 2+2?\nAnswer: "
    assert labels[:n] == [-100] * n and labels[n:] == ids[n:]
    assert ids[-1] == chars.eos_token_id            # the model learns to stop
    assert fmt.prompt_ids("2+2?") == ids[:n]        # generation starts where training did
    all_ids, all_labels, _ = fmt.example("2+2?", "4", "all")
    assert all_labels == all_ids


def test_chat_template_prompt_and_completion(chars) -> None:
    chars.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
                           "{% if add_generation_prompt %}<assistant>{% endif %}")
    try:
        assert template_kind(SFTSettings(), True) == "chat"
        fmt = Formatter(chars, "chat")
        ids, labels, n = fmt.example("hi", "yo", "response")
        assert chars.decode(ids[:n], skip_special_tokens=False) == "<user>hi</s><assistant>"
        assert chars.decode([t for t in labels if t != -100], skip_special_tokens=False) == "yo</s>"
    finally:
        chars.chat_template = None


def test_no_chat_template_and_none_named_is_one_line() -> None:
    with pytest.raises(TemplateError, match="has no chat template; set data.options.template to "
                                            "plain, step-by-step or alpaca"):
        template_kind(SFTSettings(), False)
    assert template_kind(SFTSettings(template="alpaca"), False) == "alpaca"


@pytest.mark.parametrize("options, message", [
    ({"max_new_tokens": 0}, "max_new_tokens must be an integer from 1 to 4096, got 0"),
    ({"max_new_tokens": -5}, "max_new_tokens must be an integer from 1"),
    ({"template": "llama"}, "template must be one of auto, chat, plain, alpaca"),
    ({"loss_on": "prompt"}, "loss_on must be response or all"),
    ({"max_new_token": 8}, "data.options.max_new_token: unknown option"),
])
def test_bad_settings_are_one_line(options: dict, message: str) -> None:
    with pytest.raises(FtbenchError, match=re.escape(message)):
        SFTSettings.from_options(options)
