"""Seeded synthetic movie reviews that a bag of words cannot solve but a language model can.

Why: a synthetic benchmark is only useful for comparing fine-tuning methods if it is neither
trivial nor noise. Each review carries its label through one *construction* whose meaning depends
on word order and function words, which a bag of words does not see:

- ``plain``: "The acting was superb." (the easy part, 45 % of the reviews)
- ``negation``: "The plot was not dull at all." (positive) / "... was not brilliant at all."
- ``contrast``: "The acting was great, but the plot was dull." -> the clause after *but* wins
- ``concession``: "The score was moving, even if the pacing was sloppy." -> the main clause wins
- ``verdict``: two aspects of opposite polarity, then "Overall, I cannot recommend it."
- ``expectation``: "Everyone told me it would be dull. They were wrong." (an XOR of two cues)
- ``sarcasm`` (negative): "Oh brilliant, another sequel where the dialogue is bland."
  and ``reluctant`` praise (positive): "I went in ready to hate it, but the ending was moving."
- ``hedged``: "It has its flaws, but I enjoyed it." / "It has its moments, but I was bored."

Outside the plain reviews, sentiment words appear about equally often in both classes (every
symmetric construction puts a positive and a negative adjective, or a negated one, into the
text), and neutral filler sentences vary the length. Labels are exactly balanced.

Generalisation is tested, not memorisation: every eval review uses a phrasing (template) that
never occurs in training ("however", "far from", "the critics were mistaken", ...) and about a
third of the sentiment words, aspects and genres are held out of training altogether
(``HELD_OUT_WORDS``), so a model must bring prior knowledge of English to score well.

``noise`` flips the labels of exactly ``round(noise * train_size)`` training reviews (half from
each class, so training stays balanced); eval labels are always clean, so eval accuracy measures
the rule, not the noise.

Measured (2,400 train / 600 eval, noise 0.05; the BoW figures over seeds 0-4, reproduce with
``python -m ftbench.data.synthetic``; `bow_baseline` is the model, and a test keeps it in band):

- unigram bag-of-words logistic regression: **68.6 %** eval accuracy (range 67.5-70.2 %); it
  reaches only 77 % even on its own training set, because the order-dependent constructions are
  not linearly separable in word counts;
- unigram+bigram logistic regression: 65.6 % eval (93 % train: bigrams memorise training
  phrasings that eval never uses);
- majority class: 50 %;
- the bundled pretrained MiniLM-L6-H384, fully fine-tuned (3 epochs, lr 5e-5, batch 32,
  max_length 64, seed 0, CPU): **89.2 %** eval. Its remaining errors are mostly the eval-only
  negation phrasings ("far from dull", ~52 %) and sarcasm (~35 %), which leaves headroom for
  methods and models to differ.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

Split = Literal["train", "eval"]
NEG, POS = 0, 1
LABEL_NAMES = ["negative", "positive"]
DEFAULT_TRAIN_SIZE = 2000
DEFAULT_EVAL_SIZE = 500

# --- vocabulary: (used in training and eval, held out of training) ----------------------------

POS_ADJ = (
    ("superb", "wonderful", "excellent", "brilliant", "great", "fantastic", "moving", "gripping",
     "delightful", "charming", "clever", "beautiful"),
    ("stellar", "magnificent", "splendid", "captivating", "exquisite", "terrific"),
)
NEG_ADJ = (
    ("terrible", "awful", "boring", "dull", "clumsy", "weak", "tedious", "lifeless", "bland",
     "painful", "forgettable", "sloppy"),
    ("atrocious", "dreadful", "insipid", "lackluster", "abysmal", "wooden"),
)
ASPECTS = (
    ("acting", "plot", "script", "soundtrack", "cinematography", "dialogue", "pacing", "ending",
     "direction", "story", "score", "editing", "lead performance", "humour", "camera work"),
    ("screenplay", "set design", "climax", "villain", "finale", "production design"),
)
GENRES = (
    ("thriller", "comedy", "drama", "sequel", "horror film", "romance", "superhero movie"),
    ("musical", "western", "heist movie"),
)
POS_VERDICT = (
    ("I loved it", "I would watch it again", "it is worth your time", "I recommend it",
     "I enjoyed every minute"),
    ("I had a wonderful evening", "it earns a spot on my shelf", "I left the cinema smiling"),
)
NEG_VERDICT = (
    ("I regret watching it", "it is not worth your time", "I would skip it",
     "I cannot recommend it", "I was bored the whole time"),
    ("I want my money back", "I walked out halfway", "I left the cinema annoyed"),
)
FILLERS = (
    ("I saw it on a rainy Sunday.", "It runs a little over two hours.", "My brother picked it.",
     "The theatre was half empty.", "I watched it at home on a small screen.",
     "It is based on a novel I have not read.", "It came out last year."),
    ("We caught the late show.", "It premiered at a festival last spring.",
     "I streamed it on a long flight.", "A friend lent me the disc."),
)

# Every word that eval reviews may use but training reviews never do.
HELD_OUT_WORDS: frozenset[str] = frozenset(
    w for group in (POS_ADJ, NEG_ADJ, ASPECTS, GENRES) for w in group[1])

# --- templates ---------------------------------------------------------------------------------
# Symmetric templates (label None) are written for the review's own polarity:
#   {P} and {P2} adjectives that agree with the label, {N} one that opposes it,
#   {X}/{Y} adjectives of opposite, random polarity, {PV}/{NV} verdicts (agreeing / opposing).
# Label-specific templates use absolute slots {pos}, {neg}. {a}, {b}: two different aspects,
# {g}: a genre. A template id is "<construction>:<split>:<k>"; eval ids never occur in training.

Template = tuple[str, int | None, str]   # (construction, label or None, text)

TRAIN_TEMPLATES: tuple[Template, ...] = (
    ("plain", None, "The {a} was {P}."),
    ("plain", None, "I thought the {a} was {P} and the {b} was {P2}."),
    ("plain", None, "What a {P} {a}, and a {P2} {b} too."),
    ("negation", None, "The {a} was not {N} at all."),
    ("negation", None, "I would not call the {a} {N}."),
    ("negation", None, "The {a} wasn't {N} in the slightest."),
    ("contrast", None, "The {a} was {N}, but the {b} was {P}."),
    ("contrast", None, "Sure, the {a} was {N}. But the {b} was {P}, and that is what matters."),
    ("concession", None, "The {a} was {P}, even if the {b} was {N}."),
    ("concession", None, "Despite a {N} {b}, the {a} was {P}."),
    ("verdict", None, "The {a} was {X} and the {b} was {Y}. Overall, {PV}."),
    ("verdict", None, "Some found the {a} {X}, others the {b} {Y}. For me, {PV}."),
    ("expectation", None, "Everyone told me it would be {N}. They were wrong."),
    ("expectation", None, "Everyone told me it would be {P}. They were right."),
    ("sarcasm", NEG, "Oh {pos}, another {g} where the {a} is {neg}."),
    ("sarcasm", NEG, "Wow, what a {pos} way to waste an evening."),
    ("reluctant", POS, "I went in ready to hate it, but the {a} was {pos}."),
    ("reluctant", POS, "I hate to admit it, but this {g} was {pos}."),
    ("hedged", POS, "It has its flaws, but I enjoyed it."),
    ("hedged", NEG, "It has its moments, but I did not enjoy it."),
    ("hedged", POS, "Not every scene works, yet I was glad I went."),
    ("hedged", NEG, "A few scenes work, yet I was sorry I went."),
)

EVAL_TEMPLATES: tuple[Template, ...] = (
    ("plain", None, "Honestly, the {a} felt {P}, and the {b} felt {P2}."),
    ("plain", None, "The {a} struck me as {P}."),
    ("negation", None, "The {a} was far from {N}."),
    ("negation", None, "Nobody could call the {a} {N}."),
    ("negation", None, "The {a} was never {N} for a second."),
    ("contrast", None, "The {a} was {N}; however, the {b} was {P}."),
    ("contrast", None, "The {a} may be {N}, yet the {b} is {P}, and that is what counts."),
    ("concession", None, "Although the {b} was {N}, the {a} was {P}."),
    ("concession", None, "The {a} was {P}, in spite of the {N} {b}."),
    ("verdict", None, "The {a} was {X}, the {b} was {Y}. All in all, {PV}."),
    ("expectation", None, "The critics called it {N}, and the critics were mistaken."),
    ("expectation", None, "The critics called it {P}, and for once they were spot on."),
    ("sarcasm", NEG, "Truly {pos}: I checked my watch every five minutes during this {g}."),
    ("sarcasm", NEG, "Bravo, a {pos} lesson in how to make the {a} {neg}."),
    ("reluctant", POS, "I wanted to dislike this {g}, but the {a} was {pos}."),
    ("hedged", POS, "Flawed, sure, but I had a good time."),
    ("hedged", NEG, "There are a few nice touches, but I was mostly bored."),
)

# How often each construction is used (the same mix in train and eval).
MIX: dict[str, float] = {
    "plain": 0.45, "negation": 0.10, "contrast": 0.10, "concession": 0.06, "verdict": 0.12,
    "expectation": 0.05, "sarcasm": 0.04, "reluctant": 0.04, "hedged": 0.04,
}


@dataclass(frozen=True)
class Example:
    text: str
    label: int          # the label used for training (after noise)
    template: str       # "<construction>:<split>:<k>"
    flipped: bool = False


def template_ids(split: Split) -> list[str]:
    """Ids of the templates a split draws from."""
    table = TRAIN_TEMPLATES if split == "train" else EVAL_TEMPLATES
    return [f"{t[0]}:{split}:{k}" for k, t in enumerate(table)]


def generate(n: int, seed: int, split: Split, noise: float = 0.0) -> list[Example]:
    """``n`` distinct reviews, labels balanced, deterministic for (seed, split).

    The train and eval streams use different random streams, so the eval set does not change
    when the training size does.
    """
    if not 0.0 <= noise <= 0.5:
        raise ValueError(f"noise must be between 0 and 0.5, got {noise}")
    rng = random.Random(f"ftbench-synthetic-{split}-{seed}")
    table = TRAIN_TEMPLATES if split == "train" else EVAL_TEMPLATES
    held_out = 1 if split == "eval" else 0
    labels = [POS if i % 2 else NEG for i in range(n)]
    rng.shuffle(labels)
    seen: set[str] = set()
    out: list[Example] = []
    for label in labels:
        for _attempt in range(50):
            k = _pick_template(rng, table, label)
            text = _render(rng, table[k], label, held_out)
            if text not in seen:
                break
        seen.add(text)
        out.append(Example(text, label, f"{table[k][0]}:{split}:{k}"))
    return _flip(out, round(noise * n), rng) if noise else out


def synthetic_sentiment(train_size: int | None, eval_size: int | None, seed: int,
                        noise: float = 0.0) -> tuple[list[Example], list[Example]]:
    """(train, eval) examples; ``None`` sizes mean 2,000 train / 500 eval."""
    train = generate(DEFAULT_TRAIN_SIZE if train_size is None else train_size, seed, "train", noise)
    evald = generate(DEFAULT_EVAL_SIZE if eval_size is None else eval_size, seed, "eval", 0.0)
    return train, evald


# --- internals -------------------------------------------------------------------------------

def _pick_template(rng: random.Random, table: Sequence[Template], label: int) -> int:
    """Pick a construction by MIX, then one of its templates usable for ``label``."""
    constructions = list(MIX)
    while True:
        name = rng.choices(constructions, weights=[MIX[c] for c in constructions])[0]
        options = [k for k, t in enumerate(table) if t[0] == name and t[1] in (None, label)]
        if options:
            return rng.choice(options)


def _vocab(group: tuple[tuple[str, ...], tuple[str, ...]], held_out: int) -> tuple[str, ...]:
    return group[0] + group[1] if held_out else group[0]


def _render(rng: random.Random, template: Template, label: int, held_out: int) -> str:
    """Fill one template and surround it with 0-2 neutral filler sentences."""
    _, _, text = template
    pos = _vocab(POS_ADJ, held_out)
    neg = _vocab(NEG_ADJ, held_out)
    agree, oppose = (pos, neg) if label == POS else (neg, pos)
    verdict_agree, verdict_oppose = ((_vocab(POS_VERDICT, held_out), _vocab(NEG_VERDICT, held_out))
                                     if label == POS else
                                     (_vocab(NEG_VERDICT, held_out), _vocab(POS_VERDICT, held_out)))
    a, b = rng.sample(_vocab(ASPECTS, held_out), 2)
    p1, p2 = rng.sample(agree, 2)
    x, y = rng.choice(pos), rng.choice(neg)
    if rng.random() < 0.5:
        x, y = y, x
    body = text.format(
        a=a, b=b, g=rng.choice(_vocab(GENRES, held_out)), P=p1, P2=p2, N=rng.choice(oppose),
        X=x, Y=y, PV=rng.choice(verdict_agree), NV=rng.choice(verdict_oppose),
        pos=rng.choice(pos), neg=rng.choice(neg))
    sentences = [_capitalise(body)]
    fillers = _vocab(FILLERS, held_out)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        filler = rng.choice(fillers)
        sentences.insert(rng.randrange(len(sentences) + 1), filler)
    return " ".join(sentences)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _flip(examples: list[Example], k: int, rng: random.Random) -> list[Example]:
    """Flip exactly ``k`` labels, half from each class, so the training set stays balanced."""
    by_label = {NEG: [i for i, e in enumerate(examples) if e.label == NEG],
                POS: [i for i, e in enumerate(examples) if e.label == POS]}
    chosen = rng.sample(by_label[NEG], min(k // 2, len(by_label[NEG])))
    chosen += rng.sample(by_label[POS], min(k - len(chosen), len(by_label[POS])))
    out = list(examples)
    for i in chosen:
        e = out[i]
        out[i] = Example(e.text, 1 - e.label, e.template, True)
    return out


# --- the measured baseline ---------------------------------------------------------------------

def bow_baseline(train: Sequence[Example], evald: Sequence[Example], bigrams: bool = False,
                 epochs: int = 30, lr: float = 0.5, l2: float = 1e-4) -> tuple[float, float]:
    """(train accuracy, eval accuracy) of a bag-of-words logistic regression (numpy, no sklearn).

    Kept here so the figure in the module docstring can be re-measured and is tested.
    """
    def tokens(text: str) -> list[str]:
        words = "".join(c.lower() if c.isalnum() or c == "'" else " " for c in text).split()
        return words + ([f"{u}_{v}" for u, v in zip(words, words[1:])] if bigrams else [])

    vocab: dict[str, int] = {}
    for e in train:
        for t in tokens(e.text):
            vocab.setdefault(t, len(vocab))

    def matrix(examples: Sequence[Example]) -> "np.ndarray":
        m = np.zeros((len(examples), len(vocab) + 1), dtype=np.float64)
        m[:, -1] = 1.0  # bias
        for i, e in enumerate(examples):
            for t in tokens(e.text):
                j = vocab.get(t)
                if j is not None:
                    m[i, j] = 1.0  # binary presence
        return m

    xtr, xev = matrix(train), matrix(evald)
    ytr = np.array([e.label for e in train], dtype=np.float64)
    yev = np.array([e.label for e in evald], dtype=np.float64)
    w = np.zeros(xtr.shape[1])
    rng = np.random.default_rng(0)
    batch = 32
    for _ in range(epochs):
        order = rng.permutation(len(ytr))
        for s in range(0, len(order), batch):
            idx = order[s: s + batch]
            p = 1.0 / (1.0 + np.exp(-(xtr[idx] @ w)))
            w -= lr * (xtr[idx].T @ (p - ytr[idx]) / len(idx) + l2 * w)

    def acc(x: "np.ndarray", y: "np.ndarray") -> float:
        return float((((x @ w) > 0).astype(np.float64) == y).mean())

    return acc(xtr, ytr), acc(xev, yev)


def _main() -> None:  # pragma: no cover - a measuring script, run by hand
    for bigrams in (False, True):
        evals, trains = [], []
        for seed in range(5):
            train, evald = synthetic_sentiment(2400, 600, seed, noise=0.05)
            tr, ev = bow_baseline(train, evald, bigrams=bigrams)
            trains.append(tr)
            evals.append(ev)
        print(f"{'uni+bigram' if bigrams else 'unigram':10s} eval {statistics.mean(evals):.3f} "
              f"(range {min(evals):.3f}-{max(evals):.3f})  train {statistics.mean(trains):.3f}")


if __name__ == "__main__":  # pragma: no cover
    _main()
