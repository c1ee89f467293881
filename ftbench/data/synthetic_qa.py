"""``synthetic-qa``: seeded SQuAD-format questions over short made-up biographies.

For tests and smoke runs, not for quality claims: it exercises every part of the QA path
(long contexts split into windows, answers anywhere in the paragraph, unanswerable questions)
in seconds, without any download. Each paragraph describes one invented person with four
facts in random order and ``filler`` neutral sentences between them; each question asks for
one fact. An unanswerable question asks about another invented person, who is not mentioned
in the paragraph, with the same phrasing. Train and eval use disjoint people.
"""

from __future__ import annotations

import random
from typing import Callable

from ftbench.data.squad import QAExample
from ftbench.data.unanswerable import DEFAULT_SHARE

FIRST = ("Ada", "Bruno", "Cora", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Kira", "Lars", "Mila", "Nico", "Olga", "Pavel", "Rosa", "Sami", "Tove", "Ugo")
LAST = ("Albrecht", "Brenner", "Castell", "Dorn", "Eklund", "Falk", "Gruber", "Holm", "Iversen",
        "Jansen", "Keller", "Lindqvist", "Moreau", "Novak", "Ortega", "Peltonen", "Quist",
        "Richter", "Sandoval", "Tamm")
CITIES = ("Brenmar", "Caldor", "Dunmore", "Eskvale", "Farrow", "Glenhaven", "Harlow", "Ivydale",
          "Jorvik", "Kestrel", "Lowmere", "Marden")
FIELDS = ("chemistry", "music", "law", "astronomy", "medicine", "history", "architecture",
          "geology", "painting", "economics")
JOBS = ("teacher", "engineer", "baker", "pilot", "librarian", "gardener", "carpenter",
        "journalist", "surgeon", "sailor")
FILLER = ("The region was known for its long winters.", "Many travellers passed through the valley.",
          "Records from that period are incomplete.", "The local market opened every Sunday.",
          "Several bridges were rebuilt during those years.", "The river often flooded in spring.")

# (fact sentence, question) templates; {a} is the answer, {n} the person's name.
Fact = tuple[str, str, Callable[[random.Random], str]]
FACTS: tuple[Fact, ...] = (
    ("{n} was born in {a}.", "Where was {n} born?", lambda r: r.choice(CITIES)),
    ("In {a}, {n} moved abroad.", "In which year did {n} move abroad?",
     lambda r: str(r.randint(1850, 1990))),
    ("{n} studied {a} at a small college.", "What did {n} study?", lambda r: r.choice(FIELDS)),
    ("For many years {n} worked as a {a}.", "What did {n} work as?", lambda r: r.choice(JOBS)),
)


def _people(rng: random.Random) -> list[str]:
    names = [f"{f} {last}" for f in FIRST for last in LAST]
    rng.shuffle(names)
    return names


def _paragraph(name: str, rng: random.Random, filler: int) -> tuple[str, list[tuple[str, str, int]]]:
    """A biography of ``name``; returns (context, [(question, answer, answer_start)])."""
    facts = list(FACTS)
    rng.shuffle(facts)
    parts: list[str] = []
    qas: list[tuple[str, str, int]] = []
    offset = 0
    for sentence, question, draw in facts:
        for _ in range(rng.randint(0, filler)):
            parts.append(rng.choice(FILLER))
            offset += len(parts[-1]) + 1
        answer = draw(rng)
        head, _, _ = sentence.partition("{a}")
        start = offset + len(head.format(n=name))
        parts.append(sentence.format(n=name, a=answer))
        offset += len(parts[-1]) + 1
        qas.append((question.format(n=name), answer, start))
    return " ".join(parts), qas


def _split(names: list[str], size: int, share: float, rng: random.Random, prefix: str,
           filler: int) -> list[QAExample]:
    out: list[QAExample] = []
    unanswerable = set(rng.sample(range(size), round(share * size)))
    for i in range(size):
        name = names[i % len(names)]
        context, qas = _paragraph(name, rng, filler)
        question, answer, start = rng.choice(qas)
        title = f"{prefix} biographies {i // 4}"
        if i in unanswerable:
            other = rng.choice([n for n in names if n.split()[0] != name.split()[0]
                                and n.split()[1] != name.split()[1]])
            out.append(QAExample(f"{prefix}-{i}", title, context, question.replace(name, other)))
        else:
            out.append(QAExample(f"{prefix}-{i}", title, context, question, (answer,), (start,)))
    return out


def synthetic_qa(train_size: int, eval_size: int, seed: int, filler: int = 2,
                 share: dict[str, float] | None = None) -> tuple[list[QAExample], list[QAExample]]:
    """(train, eval) examples; ``share`` of unanswerable per split (default SQuAD 2.0's)."""
    if train_size < 1 or eval_size < 1:
        raise ValueError("train_size and eval_size must be at least 1")
    share = {**DEFAULT_SHARE, **(share or {})}
    rng = random.Random(seed)
    people = _people(rng)
    half = len(people) // 2
    train = _split(people[:half], train_size, share["train"], rng, "train", filler)
    evald = _split(people[half:], eval_size, share["eval"], rng, "eval", filler)
    return train, evald
