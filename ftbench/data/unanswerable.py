"""Unanswerable questions constructed from SQuAD 1.1, for the offline SQuAD 2.0 stand-in.

SQuAD 2.0's unanswerable questions were written by crowdworkers to look answerable; the hub
copy is not reachable everywhere. Offline, ftbench builds a stand-in from SQuAD 1.1: a question
is paired with *another paragraph of the same article* that does not contain any of its
answers. The question stays on topic (same article, same entities nearby), so the model has to
read the paragraph to see that the answer is missing, but it is easier than the official
adversarial questions: figures on ``squad_v2-offline`` are not SQuAD 2.0 figures, and every such
example is marked ``constructed``.

"Does not contain its answer" is checked on word sequences (case, punctuation and spacing
ignored); a paraphrase of the answer elsewhere can still slip through, which is a known,
small source of label noise.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from typing import Sequence

from ftbench.data.squad import QAExample

# SQuAD 2.0's own shares of unanswerable questions: 43,498 / 130,319 train, 5,945 / 11,873 dev.
DEFAULT_SHARE = {"train": 1 / 3, "eval": 1 / 2}
SUFFIX = "-unanswerable"

_WORD = re.compile(r"\w+")


def _words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.casefold())) + " "


def paragraphs_by_title(pool: Sequence[QAExample]) -> dict[str, list[str]]:
    """Article title -> its distinct paragraphs, in first-seen order."""
    seen: dict[str, dict[str, None]] = {}
    for ex in pool:
        seen.setdefault(ex.title, {})[ex.context] = None
    return {title: list(contexts) for title, contexts in seen.items()}


def other_paragraph(example: QAExample, paragraphs: Sequence[str], rng: random.Random) -> str | None:
    """A seeded choice among the article's other paragraphs that hold none of the answers."""
    answers = [_words(a) for a in example.answers if _words(a).strip()]
    candidates = [p for p in paragraphs if p != example.context
                  and not any(a in _words(p) for a in answers)]
    return rng.choice(candidates) if candidates else None


def make_unanswerable(chosen: Sequence[QAExample], pool: Sequence[QAExample], share: float,
                      seed: int) -> tuple[list[QAExample], int]:
    """Turn ``round(share * len(chosen))`` answerable questions of ``chosen`` into constructed
    unanswerable ones (same position in the list); return the list and how many were built.

    Which questions are converted is drawn with ``random.Random(seed)``; a question whose
    article has no suitable other paragraph is skipped for the next candidate.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"unanswerable share must be in [0, 1), got {share}")
    rng = random.Random(seed)
    wanted = round(share * len(chosen))
    paragraphs = paragraphs_by_title(pool)
    out = list(chosen)
    order = [i for i in rng.sample(range(len(out)), len(out)) if out[i].has_answer]
    built = 0
    for i in order:
        if built >= wanted:
            break
        ex = out[i]
        context = other_paragraph(ex, paragraphs.get(ex.title, []), rng)
        if context is None:
            continue
        out[i] = replace(ex, id=ex.id + SUFFIX, context=context, answers=(), answer_starts=(),
                         constructed=True)
        built += 1
    return out, built
