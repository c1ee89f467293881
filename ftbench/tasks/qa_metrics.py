"""Official SQuAD v1.1 and v2.0 scores, start/end token accuracy, the no-answer share.

`evaluate_v1` and `evaluate_v2` follow the official evaluation scripts (``evaluate-v1.1.py``
and ``evaluate-v2.0.py``) step for step and take the same inputs: the dataset's ``data`` list
(see `ftbench.data.squad.to_squad_articles`) and ``{question id: answer text}``. They return
what the scripts print, on the scripts' 0-100 scale. The two versions differ in ways that
change figures, so both are kept exactly:

- normalisation (both): lower case, drop ASCII punctuation, drop the words a / an / the,
  collapse whitespace;
- v1.1 F1 is 0 when prediction and gold share no token, even when both are empty; v2.0 F1
  (and EM) is 1 when both are empty and 0 when only one is;
- v2.0 drops gold answers that normalise to nothing (e.g. "the") and, when none is left,
  scores against the empty answer; the question still counts as HasAns;
- v1.1 counts a question without a prediction as 0; v2.0 leaves it out of the total.

`squad_scores` turns them into record metrics, as fractions (0-1) like classification's
accuracy: ``exact_match``, ``f1`` and, for v2.0, ``has_ans_*`` / ``no_ans_*`` (the scripts'
HasAns / NoAns breakdown).
"""

from __future__ import annotations

import collections
import re
import string
from typing import Any, Mapping, Sequence

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (both scripts)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


# --- SQuAD v1.1 -----------------------------------------------------------------------------

def exact_match_v1(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_v1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def evaluate_v1(dataset: Sequence[Mapping[str, Any]], predictions: Mapping[str, str]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` (0-100) as ``evaluate-v1.1.py`` computes them."""
    f1 = exact_match = total = 0.0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue  # the script: "Unanswered question ... will receive score 0."
                ground_truths = [a["text"] for a in qa["answers"]]
                prediction = predictions[qa["id"]]
                exact_match += max(exact_match_v1(prediction, gt) for gt in ground_truths)
                f1 += max(f1_v1(prediction, gt) for gt in ground_truths)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


# --- SQuAD v2.0 -----------------------------------------------------------------------------

def _tokens_v2(s: str) -> list[str]:
    if not s:
        return []
    return normalize_answer(s).split()


def exact_v2(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def f1_v2(a_gold: str, a_pred: str) -> float:
    gold_toks = _tokens_v2(a_gold)
    pred_toks = _tokens_v2(a_pred)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)  # no-answer: 1 if both are empty, else 0
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


def evaluate_v2(dataset: Sequence[Mapping[str, Any]], predictions: Mapping[str, str],
                na_probs: Mapping[str, float] | None = None,
                na_prob_thresh: float = 1.0) -> dict[str, float | int]:
    """What ``evaluate-v2.0.py`` prints (without the optional PR-curve / best-threshold
    analysis): exact, f1, total and the HasAns_ / NoAns_ breakdown, 0-100."""
    has_ans: dict[str, bool] = {}
    exact: dict[str, float] = {}
    f1: dict[str, float] = {}
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qid = qa["id"]
                has_ans[qid] = bool(qa["answers"])
                golds = [a["text"] for a in qa["answers"] if normalize_answer(a["text"])]
                if not golds:
                    golds = [""]  # for unanswerable questions only the empty answer is right
                if qid not in predictions:
                    continue
                exact[qid] = max(exact_v2(a, predictions[qid]) for a in golds)
                f1[qid] = max(f1_v2(a, predictions[qid]) for a in golds)
    probs = na_probs if na_probs is not None else {k: 0.0 for k in predictions}
    exact = _apply_no_ans_threshold(exact, probs, has_ans, na_prob_thresh)
    f1 = _apply_no_ans_threshold(f1, probs, has_ans, na_prob_thresh)
    out = _eval_dict(exact, f1)
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in has_ans.items() if v is wanted]
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in _eval_dict(exact, f1, qids).items()})
    return out


def _apply_no_ans_threshold(scores: dict[str, float], na_probs: Mapping[str, float],
                            has_ans: Mapping[str, bool], thresh: float) -> dict[str, float]:
    return {qid: float(not has_ans[qid]) if na_probs[qid] > thresh else s
            for qid, s in scores.items()}


def _eval_dict(exact: Mapping[str, float], f1: Mapping[str, float],
               qids: Sequence[str] | None = None) -> dict[str, float | int]:
    keys = list(exact) if not qids else list(qids)
    total = len(keys)
    return {"exact": 100.0 * sum(exact[k] for k in keys) / total,
            "f1": 100.0 * sum(f1[k] for k in keys) / total,
            "total": total}


# --- record metrics -------------------------------------------------------------------------

def squad_scores(dataset: Sequence[Mapping[str, Any]], predictions: Mapping[str, str],
                 version: str) -> dict[str, float | int]:
    """The official scores of ``version`` ("1.1" / "2.0") as record metrics (fractions 0-1)."""
    if version == "1.1":
        v1 = evaluate_v1(dataset, predictions)
        return {"exact_match": v1["exact_match"] / 100, "f1": v1["f1"] / 100}
    v2 = evaluate_v2(dataset, predictions)
    out: dict[str, float | int] = {"exact_match": v2["exact"] / 100, "f1": v2["f1"] / 100}
    for prefix, name in (("HasAns", "has_ans"), ("NoAns", "no_ans")):
        if f"{prefix}_total" in v2:
            out[f"{name}_exact"] = v2[f"{prefix}_exact"] / 100
            out[f"{name}_f1"] = v2[f"{prefix}_f1"] / 100
            out[f"{name}_total"] = v2[f"{prefix}_total"]
    return out


def token_accuracy(logits: np.ndarray, labels: np.ndarray, lengths: Sequence[int]) -> float:
    """Share of windows whose highest logit (over the window's own tokens) is the labelled
    position (CLS for windows without the answer)."""
    if len(lengths) == 0:
        return 0.0
    hits = sum(int(np.argmax(row[:n]) == label) for row, label, n in zip(logits, labels, lengths))
    return hits / len(lengths)
