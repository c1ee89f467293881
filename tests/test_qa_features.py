"""QA windows and post-processing: character answers -> token positions -> answer text.

Position mapping runs on the real fast tokenizer of the tiny test models (no download);
post-processing on hand-built logits where every expected answer is obvious.
"""

from __future__ import annotations

import numpy as np
import pytest

from ftbench.data.squad import QAExample, to_squad_articles
from ftbench.data.synthetic_qa import synthetic_qa
from ftbench.errors import FtbenchError
from ftbench.tasks.qa_features import answer_positions, plan_windows, tokenize_qa
from ftbench.tasks.qa_metrics import squad_scores
from ftbench.tasks.qa_postprocess import PostProcessing, predict_answers, window_spans


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from ftbench.models import tiny_model_folder

    return AutoTokenizer.from_pretrained(str(tiny_model_folder("tiny-bert")))


def span_text(example: QAExample, offsets, start: int, end: int) -> str:
    return example.context[offsets[start][0]:offsets[end][1]]


# --- answer_positions on hand-made offsets ----------------------------------------------------

# "[CLS] q ? [SEP] paris is the capital of france . [SEP]" -- context "Paris is the capital of France."
OFFSETS = [None, None, None, None, (0, 5), (6, 8), (9, 12), (13, 20), (21, 23), (24, 30), (30, 31), None]


@pytest.mark.parametrize("chars, expected", [
    ((0, 5), (4, 4)),          # first context token
    ((13, 30), (7, 9)),        # several tokens
    ((24, 31), (9, 10)),       # ends with the window's last context token
    ((15, 20), (7, 7)),        # starts inside a token: that token
    ((0, 0), (0, 0)),          # empty span: CLS
])
def test_answer_positions_inside_the_window(chars, expected) -> None:
    assert answer_positions(OFFSETS, *chars, cls_index=0) == expected


def test_answer_positions_outside_or_across_the_edge_is_cls() -> None:
    window = OFFSETS[:8] + [None]          # context ends after "capital" (char 20)
    assert answer_positions(window, 13, 20, 0) == (7, 7)
    assert answer_positions(window, 13, 26, 0) == (0, 0)      # crosses the right edge
    assert answer_positions(window, 24, 30, 0) == (0, 0)      # wholly outside
    late = [None, None, None, None, (9, 12), (13, 20), (21, 23), None]   # starts at "the"
    assert answer_positions(late, 0, 12, 0) == (0, 0)          # crosses the left edge
    assert answer_positions(late, 9, 12, 0) == (4, 4)


# --- tokenize_qa with a real tokenizer ---------------------------------------------------------

def long_example(answer_at_word: int, words: int = 60) -> QAExample:
    filler = [f"w{i}" for i in range(words)]
    filler[answer_at_word:answer_at_word + 2] = ["golden", "gate"]
    context = " ".join(filler)
    start = context.index("golden gate")
    return QAExample("long", "t", context, "what bridge?", ("golden gate",), (start,))


def crossing_first_window_edge(tokenizer) -> tuple[QAExample, object]:
    """The example whose answer starts in window 1 and ends after it."""
    for word in range(40):
        example = long_example(word)
        feats = tokenize_qa(tokenizer, [example], max_length=40, doc_stride=12)
        window_end = [o for o in feats.offsets[0] if o is not None][-1][1]
        start = example.answer_starts[0]
        if start < window_end < start + len("golden gate"):
            return example, feats
    raise AssertionError("no placement crosses the edge")


def test_windows_overlap_and_an_answer_across_an_edge_is_found_in_the_next(tokenizer) -> None:
    example, feats = crossing_first_window_edge(tokenizer)
    assert len(feats) >= 3 and feats.doc_stride == 12
    labels = [(f["start_positions"], f["end_positions"]) for f in feats.features]
    assert labels[0] == (0, 0)                                # crosses window 1's edge: CLS
    spans = [(i, s, e) for i, (s, e) in enumerate(labels) if (s, e) != (0, 0)]
    assert spans, "the overlap must hold the whole answer in a later window"
    for i, s, e in spans:
        assert span_text(example, feats.offsets[i], s, e) == "golden gate"
    # consecutive windows overlap by exactly doc_stride context tokens
    ctx = [[o for o in offs if o is not None] for offs in feats.offsets]
    assert ctx[0][-12:] == ctx[1][:12]
    assert all(n <= 40 for n in feats.lengths())
    assert feats.example_index == [0] * len(feats)


def test_every_labelled_window_spells_its_answer_on_synthetic_data(tokenizer) -> None:
    train, _ = synthetic_qa(40, 4, seed=5, filler=3)
    feats = tokenize_qa(tokenizer, train, max_length=48, doc_stride=16)
    found = set()
    for i, f in enumerate(feats.features):
        ex = train[feats.example_index[i]]
        s, e = f["start_positions"], f["end_positions"]
        cls = feats.cls_index[i]
        if not ex.has_answer:
            assert (s, e) == (cls, cls)
            continue
        if (s, e) != (cls, cls):
            assert span_text(ex, feats.offsets[i], s, e).lower() == ex.answers[0].lower()
            found.add(feats.example_index[i])
    answerable = {i for i, ex in enumerate(train) if ex.has_answer}
    assert found == answerable        # every answer is whole in at least one window
    assert len(feats) > len(train)    # contexts really were split


def test_long_questions_are_cut_and_a_too_large_stride_is_reduced(tokenizer) -> None:
    ex = QAExample("q", "t", "short context here", " ".join(["what"] * 50) + "?", (), ())
    feats = tokenize_qa(tokenizer, [ex], max_length=32, doc_stride=30, max_query_length=8)
    assert any("cut" in n for n in feats.notes) and any("doc_stride 30 reduced" in n for n in feats.notes)
    assert feats.doc_stride < 32 - 8 - 3
    assert sum(1 for t in feats.features[0]["token_type_ids"] if t == 0) == 8 + 2   # CLS q.. SEP
    with pytest.raises(FtbenchError, match="too small"):
        plan_windows(tokenizer, max_length=4, doc_stride=1, max_query_length=64)


# --- post-processing ---------------------------------------------------------------------------

CONTEXT = "Paris is the capital of France."
EXAMPLE = QAExample("p", "t", CONTEXT, "q?", ("Paris",), (0,))


def logits(n: int, high: dict[int, float], pad_to: int | None = None) -> np.ndarray:
    row = np.zeros(pad_to or n)
    if pad_to:
        row[n:] = -100.0
    for k, v in high.items():
        row[k] = v
    return row


def test_window_spans_respect_context_order_and_length() -> None:
    start = logits(12, {1: 9.0, 4: 5.0, 7: 4.0})     # token 1 is question: never a start
    end = logits(12, {3: 9.0, 4: 5.0, 9: 4.5})
    spans = window_spans(start, end, OFFSETS, n_best=20, max_answer_length=30)
    assert spans[0][1:] == (4, 4)                     # "Paris"
    assert all(OFFSETS[s] is not None and OFFSETS[e] is not None and e >= s for _, s, e in spans)
    short = window_spans(start, end, OFFSETS, n_best=20, max_answer_length=2)
    assert all(e - s + 1 <= 2 for _, s, e in short)
    assert window_spans(logits(12, {4: 5.0}), logits(12, {4: 1.0}), OFFSETS, 1, 30) == [(6.0, 4, 4)]


def test_null_threshold_and_v1_never_answers_nothing() -> None:
    start = [logits(12, {0: 6.0, 4: 3.0})]
    end = [logits(12, {0: 6.0, 4: 3.0})]              # null 12 vs span 6
    args = ([EXAMPLE], [0], [OFFSETS], [0], np.array(start), np.array(end))
    v2 = predict_answers(*args, PostProcessing())
    assert v2[0].no_answer and v2[0].null_score == 12.0 and v2[0].score == 6.0
    lenient = predict_answers(*args, PostProcessing(null_threshold=7.0))
    assert lenient[0].text == "Paris"
    v1 = predict_answers(*args, PostProcessing(allow_no_answer=False))
    assert v1[0].text == "Paris"


def test_windows_are_aggregated_per_question() -> None:
    # two windows of one question; the second holds the answer, "France" at its token 5
    w2 = [None, None, None, None, (21, 23), (24, 30), (30, 31), None]
    starts = np.array([logits(12, {0: 8.0, 5: 1.0}), logits(12, {0: 1.0, 5: 6.0}, pad_to=12)])
    ends = np.array([logits(12, {0: 8.0, 5: 1.0}), logits(12, {0: 1.0, 5: 6.0, 9: 50.0})])
    # window 2 is only 8 tokens long: the 50.0 at position 9 is padding and must be ignored
    example = QAExample("p", "t", CONTEXT, "q?", ("France",), (24,))
    out = predict_answers([example, EXAMPLE], [0, 0], [OFFSETS, w2], [0, 0], starts, ends)
    assert out[0].text == "France"                    # null = min(16, 2) = 2 < span 12
    assert out[0].null_score == 2.0 and out[0].score == 12.0
    assert out[1].no_answer and out[1].score == float("-inf")   # a question without windows


def test_labels_round_trip_through_post_processing_to_full_marks(tokenizer) -> None:
    train, _ = synthetic_qa(30, 4, seed=9, filler=3)
    feats = tokenize_qa(tokenizer, train, max_length=48, doc_stride=16)
    width = max(feats.lengths())
    starts = np.full((len(feats), width), -100.0)
    ends = np.full((len(feats), width), -100.0)
    for i, f in enumerate(feats.features):
        starts[i, :len(f["input_ids"])] = 0.0
        ends[i, :len(f["input_ids"])] = 0.0
        starts[i, f["start_positions"]] = 10.0
        ends[i, f["end_positions"]] = 10.0
    answers = predict_answers(train, feats.example_index, feats.offsets, feats.cls_index, starts, ends)
    preds = {ex.id: a.text for ex, a in zip(train, answers)}
    scores = squad_scores(to_squad_articles(train), preds, "2.0")
    assert scores["exact_match"] == 1.0 and scores["f1"] == 1.0
    assert scores["no_ans_total"] == sum(not ex.has_answer for ex in train) > 0
