"""The SQuAD format: one question over one context, with zero or more gold answers.

`QAExample` is what every QA source (the bundled SQuAD 1.1 files, the hub, the offline 2.0
stand-in, the synthetic generator) produces and what tokenisation, post-processing and the
official metrics consume. `to_squad_articles` writes examples back in the JSON layout the
official evaluation scripts read, so the metric code can mirror those scripts line for line.

Sampling is a pure function of (pool, size, seed): the same seed always picks the same
questions, in the same order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from ftbench.text import error_line
from ftbench.errors import DataUnavailable

SquadVersion = Literal["1.1", "2.0"]


@dataclass(frozen=True)
class QAExample:
    id: str
    title: str
    context: str
    question: str
    answers: tuple[str, ...] = ()        # gold answer texts; empty = unanswerable
    answer_starts: tuple[int, ...] = ()  # character offset of each answer in ``context``
    constructed: bool = False            # an unanswerable question ftbench built (not official)

    @property
    def has_answer(self) -> bool:
        return bool(self.answers)


@dataclass
class QAData:
    train: list[QAExample]
    eval: list[QAExample]
    version: SquadVersion        # which official metric applies (2.0: no-answer allowed)
    source: str                  # one line naming the source actually used
    notes: list[str] = field(default_factory=list)
    constructed: dict[str, int] = field(default_factory=dict)  # split -> constructed unanswerable


def read_squad_json(path: Path) -> list[QAExample]:
    """Every question of a SQuAD v1.1 / v2.0 JSON file, in file order."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return list(examples_from_articles(doc["data"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataUnavailable(f"cannot read SQuAD file {path}: {error_line(exc)}") from None


def examples_from_articles(articles: Iterable[dict[str, Any]]) -> Iterable[QAExample]:
    """The SQuAD JSON ``data`` list -> examples (v2.0 ``is_impossible`` questions have no answers)."""
    for article in articles:
        title = str(article.get("title", ""))
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                answers = [] if qa.get("is_impossible") else qa.get("answers", [])
                yield QAExample(
                    id=str(qa["id"]), title=title, context=context, question=qa["question"],
                    answers=tuple(a["text"] for a in answers),
                    answer_starts=tuple(int(a["answer_start"]) for a in answers),
                )


def example_from_hub_row(row: dict[str, Any]) -> QAExample:
    """A row of the hub's ``squad`` / ``squad_v2`` (answers as ``{text: [...], answer_start: [...]}``)."""
    answers = row.get("answers") or {}
    return QAExample(
        id=str(row["id"]), title=str(row.get("title", "")), context=row["context"],
        question=row["question"], answers=tuple(answers.get("text", [])),
        answer_starts=tuple(int(s) for s in answers.get("answer_start", [])),
    )


def to_squad_articles(examples: Sequence[QAExample]) -> list[dict[str, Any]]:
    """Examples in the official JSON layout (one paragraph per example is enough for scoring)."""
    return [{
        "title": ex.title,
        "paragraphs": [{
            "context": ex.context,
            "qas": [{"id": ex.id, "question": ex.question,
                     "answers": [{"text": t, "answer_start": s}
                                 for t, s in zip(ex.answers, ex.answer_starts)]}],
        }],
    } for ex in examples]


def sample(pool: Sequence[QAExample], size: int | None, seed: int,
           what: str = "train") -> tuple[list[QAExample], list[str]]:
    """``size`` questions drawn by ``random.Random(seed)`` (all of them, shuffled, if ``None``)."""
    notes: list[str] = []
    n = len(pool) if size is None else size
    if n > len(pool):
        notes.append(f"{what}_size {n:,} clamped to the {len(pool):,} questions available")
        n = len(pool)
    order = random.Random(seed).sample(range(len(pool)), n)
    return [pool[i] for i in order], notes


