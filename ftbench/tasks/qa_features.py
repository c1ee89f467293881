"""Question + context -> model windows, with answer spans mapped from characters to tokens.

A context longer than ``max_length`` is split into overlapping windows (``doc_stride`` tokens
of overlap, the tokenizer's ``return_overflowing_tokens``); the question is repeated in each.
The tokenizer's offset mapping gives each context token its character span, which is how a
character-level gold answer becomes ``start_positions`` / ``end_positions``:

- the answer lies wholly inside the window: the first and last tokens it touches;
- the question has no answer, or the window does not hold the whole answer (it lies outside,
  or crosses the window's edge): both positions point at the CLS token, the SQuAD 2.0
  convention for "no answer here". The overlap makes sure an answer shorter than the stride
  appears whole in some window.

Examples with several gold answers are labelled with the first (training and eval loss only;
the metrics score against every gold answer). Questions longer than ``max_query_length``
tokens are cut there, so a window always has room for context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ftbench.data.squad import QAExample
from ftbench.errors import FtbenchError
from ftbench.tasks.classification import TokenizedDataset

Offsets = list[tuple[int, int] | None]   # per token: (start, end) char span in the context, or None


@dataclass
class QAFeatures(TokenizedDataset):
    """Tokenised windows (a torch-style dataset) plus what post-processing needs per window."""

    features: list[dict[str, Any]]          # model inputs + start_positions / end_positions
    example_index: list[int]                # window -> index of its example
    offsets: list[Offsets]                  # window -> context offsets (None outside the context)
    cls_index: list[int]                    # window -> position of the CLS token
    doc_stride: int                         # the overlap actually used
    notes: list[str] = field(default_factory=list)

    def answer_windows(self) -> int:
        """Windows whose label is a span (not CLS)."""
        return sum(1 for f, c in zip(self.features, self.cls_index) if f["start_positions"] != c)


def answer_positions(offsets: Offsets, start_char: int, end_char: int, cls_index: int) -> tuple[int, int]:
    """Token positions of the character span [start_char, end_char) in one window, or
    (cls_index, cls_index) when the window does not hold the whole span."""
    context = [k for k, span in enumerate(offsets) if span is not None]
    if not context or end_char <= start_char:
        return cls_index, cls_index
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:  # type: ignore[index]
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:  # type: ignore[index]
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:  # type: ignore[index]
        end -= 1
    return start - 1, end + 1


@dataclass(frozen=True)
class WindowPlan:
    question_limit: int   # question tokens kept
    doc_stride: int       # overlap between windows
    notes: tuple[str, ...] = ()


def plan_windows(tokenizer: Any, max_length: int, doc_stride: int, max_query_length: int) -> WindowPlan:
    """Fit the question limit and the stride into ``max_length`` (the tokenizer panics when the
    stride is not smaller than the room left for context)."""
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    limit = max(1, min(max_query_length, (max_length - specials) // 2))
    room = max_length - limit - specials   # context tokens in a window with the longest question
    if room < 2:
        raise FtbenchError(f"max_length {max_length} is too small for question answering "
                           f"(use at least {limit + specials + 8})")
    notes: tuple[str, ...] = ()
    stride = doc_stride
    if stride >= room:
        stride = room - 1
        notes = (f"doc_stride {doc_stride} reduced to {stride}: it must be smaller than the "
                 f"{room} context tokens a {max_length}-token window holds",)
    return WindowPlan(limit, max(0, stride), notes)


def _cut_questions(tokenizer: Any, questions: list[str], limit: int) -> tuple[list[str], int]:
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    out, cut = [], 0
    for question, offsets in zip(questions, enc["offset_mapping"]):
        if len(offsets) > limit:
            question = question[: offsets[limit - 1][1]]
            cut += 1
        out.append(question)
    return out, cut


def tokenize_qa(tokenizer: Any, examples: Sequence[QAExample], max_length: int, doc_stride: int = 128,
                max_query_length: int = 64, batch: int = 256) -> QAFeatures:
    """Windows for every example, labelled with token positions (see the module docstring)."""
    if not getattr(tokenizer, "is_fast", False):
        raise FtbenchError("question answering needs a fast tokenizer (for the offset mapping); "
                           f"{type(tokenizer).__name__} is not one")
    plan = plan_windows(tokenizer, max_length, doc_stride, max_query_length)
    questions, cut = _cut_questions(tokenizer, [ex.question.lstrip() for ex in examples],
                                    plan.question_limit)
    pad_right = tokenizer.padding_side == "right"
    context_id = 1 if pad_right else 0
    keys = list(tokenizer.model_input_names)
    out = QAFeatures([], [], [], [], plan.doc_stride, list(plan.notes))
    if cut:
        out.notes.append(f"{cut} questions longer than {plan.question_limit} tokens were cut")
    for start in range(0, len(examples), batch):
        qs = questions[start:start + batch]
        cs = [ex.context for ex in examples[start:start + batch]]
        enc = tokenizer(qs if pad_right else cs, cs if pad_right else qs,
                        truncation="only_second" if pad_right else "only_first",
                        max_length=max_length, stride=plan.doc_stride, padding=False,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
        for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
            example = examples[start + sample]
            ids = enc["input_ids"][i]
            sequence_ids = enc.sequence_ids(i)
            offsets: Offsets = [tuple(span) if sequence_ids[k] == context_id else None  # type: ignore[misc]
                                for k, span in enumerate(enc["offset_mapping"][i])]
            cls = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
            if example.has_answer:
                first = example.answer_starts[0]
                positions = answer_positions(offsets, first, first + len(example.answers[0]), cls)
            else:
                positions = (cls, cls)
            item = {k: enc[k][i] for k in keys if k in enc}
            item["start_positions"], item["end_positions"] = positions
            out.features.append(item)
            out.example_index.append(start + sample)
            out.offsets.append(offsets)
            out.cls_index.append(cls)
    return out
