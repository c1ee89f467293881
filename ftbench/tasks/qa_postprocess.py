"""Start/end logits of every window -> one answer text per question.

Per window, the ``n_best`` highest start logits and the ``n_best`` highest end logits are
paired; a pair is a candidate when both tokens lie in the context, end >= start and the span
is at most ``max_answer_length`` tokens. Its score is start logit + end logit, and its text is
the context between the first token's start and the last token's end character, so the
answer keeps the context's own casing and spacing.

Windows are aggregated per question: the best-scoring candidate over all its windows wins. The
no-answer score is the CLS start + end logit, taken as the *lowest* over the question's
windows (a window that does not hold the answer is expected to vote for CLS, so only the most
confident window speaks for "there is an answer somewhere"). With no-answer allowed (SQuAD
2.0) the prediction is empty when ``null score - best span score > null_threshold``, or when no
window has a valid span. This follows the reference post-processing of the transformers
question-answering examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ftbench.data.squad import QAExample
from ftbench.tasks.qa_features import Offsets


@dataclass(frozen=True)
class Prediction:
    text: str            # "" means no answer
    score: float         # best span's start + end logit; -inf when there is no valid span
    null_score: float    # lowest CLS start + end logit over the question's windows

    @property
    def no_answer(self) -> bool:
        return self.text == ""


@dataclass(frozen=True)
class PostProcessing:
    n_best: int = 20
    max_answer_length: int = 30     # tokens
    allow_no_answer: bool = True    # SQuAD 2.0; False for 1.1
    null_threshold: float = 0.0


def window_spans(start: np.ndarray, end: np.ndarray, offsets: Offsets, n_best: int,
                 max_answer_length: int) -> list[tuple[float, int, int]]:
    """(score, start token, end token) of the valid candidates of one window, best first.

    ``start`` / ``end`` may be longer than the window (the Trainer pads them across batches);
    only the first ``len(offsets)`` positions are read.
    """
    n = len(offsets)
    start, end = start[:n], end[:n]
    starts = np.argsort(start)[::-1][:n_best]
    ends = np.argsort(end)[::-1][:n_best]
    out: list[tuple[float, int, int]] = []
    for s in starts:
        if offsets[s] is None:
            continue
        for e in ends:
            if offsets[e] is None or e < s or e - s + 1 > max_answer_length:
                continue
            out.append((float(start[s] + end[e]), int(s), int(e)))
    out.sort(key=lambda c: -c[0])
    return out


def predict_answers(examples: Sequence[QAExample], example_index: Sequence[int],
                    offsets: Sequence[Offsets], cls_index: Sequence[int],
                    start_logits: np.ndarray, end_logits: np.ndarray,
                    settings: PostProcessing = PostProcessing()) -> list[Prediction]:
    """One `Prediction` per example (in example order) from the logits of all windows."""
    windows: list[list[int]] = [[] for _ in examples]
    for f, ex in enumerate(example_index):
        windows[ex].append(f)
    out: list[Prediction] = []
    for ex, feats in zip(examples, windows):
        best: tuple[float, int, int, int] | None = None   # score, window, start, end
        null = math.inf
        for f in feats:
            c = cls_index[f]
            null = min(null, float(start_logits[f][c] + end_logits[f][c]))
            spans = window_spans(start_logits[f], end_logits[f], offsets[f], settings.n_best,
                                 settings.max_answer_length)
            if spans and (best is None or spans[0][0] > best[0]):
                best = (spans[0][0], f, spans[0][1], spans[0][2])
        if best is None:
            out.append(Prediction("", -math.inf, null))
            continue
        score, f, s, e = best
        if settings.allow_no_answer and null - score > settings.null_threshold:
            out.append(Prediction("", score, null))
            continue
        text = ex.context[offsets[f][s][0]:offsets[f][e][1]]  # type: ignore[index]
        out.append(Prediction(text, score, null))
    return out
