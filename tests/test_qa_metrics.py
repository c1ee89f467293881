"""SQuAD metrics: hand-worked cases of the official v1.1 / v2.0 scripts' behaviour.

Every expected figure below was worked out by hand from the official scripts'
definitions (evaluate-v1.1.py, evaluate-v2.0.py), not by running ftbench's code; the
comments show the arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftbench.data.squad import QAExample, to_squad_articles
from ftbench.tasks.qa_metrics import (
    evaluate_v1,
    evaluate_v2,
    exact_match_v1,
    exact_v2,
    f1_v1,
    f1_v2,
    normalize_answer,
    squad_scores,
    token_accuracy,
)


def dataset(golds: dict[str, list[str]]) -> list[dict]:
    """The official JSON ``data`` list for {question id: gold answer texts}."""
    return to_squad_articles([
        QAExample(qid, "t", "context", "q?", tuple(texts), tuple(0 for _ in texts))
        for qid, texts in golds.items()])


@pytest.mark.parametrize("raw, expected", [
    ("The Denver Broncos", "denver broncos"),            # case, article
    ("  an   apple,  a pear!", "apple pear"),             # articles, punctuation, spacing
    ("\tThe\nanswer ", "answer"),                         # any whitespace
    ("Theater", "theater"),                               # 'the' only as a whole word
    ("the-end", "theend"),                                # punctuation goes before articles do
    ("A.B.C.", "abc"),
    ("U.S. Army", "us army"),
    ("don't", "dont"),
    ("aN", ""),                                           # lower-cased first, then removed
    ("1939–1945", "1939–1945"),                           # en dash is not ASCII punctuation
    ("¿Qué?", "¿qué"),                                    # nor is ¿
    ("", ""),
])
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_v1_and_v2_disagree_exactly_where_the_scripts_do() -> None:
    # both empty: v1 EM true but F1 0 (no common token); v2 EM 1 and F1 1
    assert exact_match_v1("", "the") is True and f1_v1("", "the") == 0
    assert exact_v2("", "") == 1 and f1_v2("", "") == 1
    # only one empty: v2 gives 0 for both
    assert f1_v2("Paris", "") == 0 and f1_v2("", "Paris") == 0
    # counted tokens: x x y vs x y y share 2 of 3 -> p = r = 2/3
    assert f1_v1("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1_v2("x y y", "x x y") == pytest.approx(2 / 3)


def test_evaluate_v1_max_over_golds_and_missing_predictions() -> None:
    data = dataset({
        "q1": ["Denver Broncos", "The Denver Broncos", "Broncos"],
        "q2": ["Denver Broncos", "Broncos"],
        "q3": ["the"],
        "q4": ["x y y"],
        "q5": ["anything"],
    })
    preds = {
        "q1": "denver  BRONCOS.",        # EM 1, F1 1
        "q2": "the Broncos team",        # "broncos team": vs "broncos" p=1/2 r=1 -> 2/3 (best gold)
        "q3": "",                        # v1: EM 1 ("" == ""), F1 0
        "q4": "x x y",                   # EM 0, F1 2/3
    }                                    # q5 missing: scores 0 but counts in the total
    out = evaluate_v1(data, preds)
    assert out["exact_match"] == pytest.approx(100 * 2 / 5)                 # 40.0
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 2 / 3 + 0) / 5)  # 46.67


V2_GOLDS = {
    "q1": ["Denver Broncos", "The Denver Broncos", "Broncos"],  # HasAns
    "q2": ["Denver Broncos", "Broncos"],                        # HasAns
    "q3": ["the"],              # HasAns, but its only gold normalises to "" -> scored against ""
    "q4": [],                   # NoAns
    "q5": [],                   # NoAns
    "q6": ["Paris"],            # HasAns
    "q7": ["a"],                # HasAns, gold normalises to "" as well
    "q8": [" Paris ", "paris, France"],
}
V2_PREDS = {
    "q1": "denver  BRONCOS.",   # 1, 1
    "q2": "the Broncos team",   # 0, 2/3
    "q3": "",                   # 1, 1
    "q4": "",                   # 1, 1
    "q5": "Paris",              # 0, 0
    "q6": "",                   # 0, 0
    "q7": "an",                 # normalises to "" like the gold: 1, 1
    "q8": "Paris France",       # second gold matches exactly: 1, 1
}


def test_evaluate_v2_overall_and_has_ans_no_ans_breakdown() -> None:
    out = evaluate_v2(dataset(V2_GOLDS), V2_PREDS)
    assert out["total"] == 8 and out["HasAns_total"] == 6 and out["NoAns_total"] == 2
    assert out["exact"] == pytest.approx(100 * 5 / 8)                    # 62.5
    assert out["f1"] == pytest.approx(100 * (5 + 2 / 3) / 8)             # 70.83
    assert out["HasAns_exact"] == pytest.approx(100 * 4 / 6)             # q1 q3 q7 q8
    assert out["HasAns_f1"] == pytest.approx(100 * (4 + 2 / 3) / 6)
    assert out["NoAns_exact"] == pytest.approx(50.0) and out["NoAns_f1"] == pytest.approx(50.0)
    assert list(out) == ["exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total",
                         "NoAns_exact", "NoAns_f1", "NoAns_total"]


def test_evaluate_v2_no_answer_probability_threshold() -> None:
    probs = {k: 0.0 for k in V2_PREDS} | {"q2": 0.9, "q5": 0.9}
    out = evaluate_v2(dataset(V2_GOLDS), V2_PREDS, probs, na_prob_thresh=0.5)
    # q2 (HasAns) forced to no-answer: 0 / 0; q5 (NoAns) forced to no-answer: 1 / 1
    assert out["exact"] == pytest.approx(100 * 6 / 8)
    assert out["f1"] == pytest.approx(100 * 6 / 8)


def test_evaluate_v2_without_unanswerable_questions_has_no_noans_keys() -> None:
    out = evaluate_v2(dataset({"a": ["x"], "b": ["y z"]}), {"a": "x", "b": "z"})
    assert "NoAns_total" not in out and out["HasAns_total"] == 2
    assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_squad_scores_are_fractions_with_record_names() -> None:
    v2 = squad_scores(dataset(V2_GOLDS), V2_PREDS, "2.0")
    assert v2["exact_match"] == pytest.approx(5 / 8) and v2["f1"] == pytest.approx((5 + 2 / 3) / 8)
    assert v2["has_ans_total"] == 6 and v2["no_ans_exact"] == pytest.approx(0.5)
    assert v2["has_ans_exact"] == pytest.approx(4 / 6)
    v1 = squad_scores(dataset({"a": ["x"], "b": ["the"]}), {"a": "x", "b": ""}, "1.1")
    assert v1 == {"exact_match": 1.0, "f1": 0.5}   # b: v1 EM 1, F1 0


def test_token_accuracy_reads_only_each_windows_tokens() -> None:
    logits = np.array([[0.0, 5.0, 1.0, -100.0],     # argmax 1
                       [3.0, 1.0, 2.0, 9.0]])       # 9.0 lies past the window's 3 tokens -> 0
    assert token_accuracy(logits, np.array([1, 0]), [3, 3]) == 1.0
    assert token_accuracy(logits, np.array([1, 3]), [3, 4]) == 1.0
    assert token_accuracy(logits, np.array([2, 0]), [3, 3]) == 0.5
