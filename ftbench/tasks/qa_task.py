"""Extractive question answering wired for the engine.

``prepare`` loads the questions (`ftbench.data.qa_sources`), cuts them into labelled windows
(`qa_features`) and returns a ``compute_metrics`` that closes over the eval windows and
questions: the Trainer hands it ``(start_logits, end_logits)`` for every eval window and the
labelled ``(start_positions, end_positions)``; it post-processes them into one answer per
question (`qa_postprocess`) and scores those with the official SQuAD metric of the data's
version (`qa_metrics`).

Record metrics (fractions 0-1): ``exact_match``, ``f1``; for SQuAD 2.0 data also
``has_ans_exact`` / ``has_ans_f1`` / ``has_ans_total`` and ``no_ans_*``; ``start_accuracy`` and
``end_accuracy`` (per window, argmax vs label, CLS for windows without the answer);
``no_answer_rate`` (share of questions answered with nothing). ``data_info["baselines"]`` holds
what predicting no answer for every question scores on the same eval set.

Settings from ``data.options``: ``doc_stride`` (default 128), ``max_query_length`` (64),
``max_answer_length`` (30), ``n_best`` (20), ``null_threshold`` (0.0); the window length is
``train.max_length``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from transformers import AutoModelForQuestionAnswering

from ftbench.data.qa_sources import load_qa
from ftbench.data.squad import QAData, to_squad_articles
from ftbench.errors import FtbenchError
from ftbench.spec import RunSpec
from ftbench.tasks.base import Prepared
from ftbench.tasks.qa_features import QAFeatures, tokenize_qa
from ftbench.tasks.qa_metrics import squad_scores, token_accuracy
from ftbench.tasks.qa_postprocess import PostProcessing, predict_answers
from ftbench.tasks.reuse import TokenCache, cached, fingerprint, tokenizer_key

LABEL_NAMES = ["start_positions", "end_positions"]


@dataclass(frozen=True)
class QASettings:
    doc_stride: int = 128
    max_query_length: int = 64
    max_answer_length: int = 30
    n_best: int = 20
    null_threshold: float = 0.0

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "QASettings":
        values: dict[str, Any] = {}
        for key, kind, low in (("doc_stride", int, 0), ("max_query_length", int, 1),
                               ("max_answer_length", int, 1), ("n_best", int, 1),
                               ("null_threshold", float, None)):
            if key not in options:
                continue
            value = options[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
                (kind is float or float(value).is_integer())
            if not ok or (low is not None and value < low):
                want = "an integer" if kind is int else "a number"
                bound = f" >= {low}" if low is not None else ""
                raise FtbenchError(f"data.options.{key} must be {want}{bound}, got {value!r}")
            values[key] = kind(value)
        return cls(**values)


class QATask:
    name = "qa"

    def prepare(self, spec: RunSpec, tokenizer: Any, log: Callable[[str], None],
                cache: TokenCache | None = None) -> Prepared:
        settings = QASettings.from_options(spec.data.options)
        data = load_qa(spec.data, seed=spec.seed, offline=spec.offline, log=log)
        max_length = spec.train.max_length

        def make() -> tuple[QAFeatures, QAFeatures]:
            return (tokenize_qa(tokenizer, data.train, max_length, settings.doc_stride,
                                settings.max_query_length),
                    tokenize_qa(tokenizer, data.eval, max_length, settings.doc_stride,
                                settings.max_query_length))

        key = (self.name, tokenizer_key(tokenizer), max_length, settings.doc_stride,
               settings.max_query_length, fingerprint(data.train, data.eval))
        (train, evald), reused = cached(cache, key, make, lambda d: d[0].tokens() + d[1].tokens())
        if reused:
            log("data: tokenised windows reused (same questions, tokenizer and max_length as an "
                "earlier run)")
        for note in dict.fromkeys(train.notes + evald.notes):
            log(note)
        post = PostProcessing(settings.n_best, settings.max_answer_length,
                              allow_no_answer=data.version == "2.0",
                              null_threshold=settings.null_threshold)
        return Prepared(
            train_dataset=train,
            eval_dataset=evald,
            model_class=AutoModelForQuestionAnswering,
            model_kwargs={},
            compute_metrics=make_compute_metrics(data, evald, post),
            data_info=dict(_data_info(data, train, evald, settings, max_length), tokens_reused=reused),
            label_names_for_trainer=list(LABEL_NAMES),
        )


def make_compute_metrics(data: QAData, evald: QAFeatures,
                         post: PostProcessing) -> Callable[[Any], dict[str, Any]]:
    """The Trainer's ``compute_metrics`` for these eval windows and questions."""
    articles = to_squad_articles(data.eval)
    lengths = evald.lengths()

    def compute_metrics(prediction: Any) -> dict[str, Any]:
        start_logits, end_logits = (np.asarray(x) for x in prediction.predictions[:2])
        answers = predict_answers(data.eval, evald.example_index, evald.offsets, evald.cls_index,
                                  start_logits, end_logits, post)
        metrics: dict[str, Any] = dict(squad_scores(
            articles, {ex.id: a.text for ex, a in zip(data.eval, answers)}, data.version))
        labels = prediction.label_ids
        if labels is not None and len(labels) == 2:
            metrics["start_accuracy"] = token_accuracy(start_logits, np.asarray(labels[0]), lengths)
            metrics["end_accuracy"] = token_accuracy(end_logits, np.asarray(labels[1]), lengths)
        metrics["no_answer_rate"] = sum(a.no_answer for a in answers) / len(answers) if answers else 0.0
        metrics["questions"] = len(data.eval)
        metrics["windows"] = len(evald)
        metrics["squad_version"] = data.version
        return metrics

    return compute_metrics


def no_answer_baseline(data: QAData) -> dict[str, float]:
    """What answering nothing to every eval question scores (the trivial SQuAD 2.0 baseline)."""
    scores = squad_scores(to_squad_articles(data.eval), {ex.id: "" for ex in data.eval}, data.version)
    return {"exact_match": float(scores["exact_match"]), "f1": float(scores["f1"])}


def _data_info(data: QAData, train: QAFeatures, evald: QAFeatures, settings: QASettings,
               max_length: int) -> dict[str, Any]:
    def answerable(examples: list[Any]) -> int:
        return sum(1 for ex in examples if ex.has_answer)

    lengths = train.lengths()
    return {
        "source": data.source,
        "squad_version": data.version,
        "train_size": len(data.train),
        "eval_size": len(data.eval),
        "train_answerable": answerable(data.train),
        "eval_answerable": answerable(data.eval),
        "constructed_unanswerable": dict(data.constructed),
        "train_windows": len(train),
        "eval_windows": len(evald),
        "train_windows_with_answer": train.answer_windows(),
        "mean_train_tokens": round(sum(lengths) / len(lengths), 1) if lengths else None,
        "max_length": max_length,
        "doc_stride": train.doc_stride,
        "max_query_length": settings.max_query_length,
        "max_answer_length": settings.max_answer_length,
        "n_best": settings.n_best,
        "null_threshold": settings.null_threshold,
        "baselines": {"no_answer": no_answer_baseline(data)},
        "notes": list(data.notes) + list(dict.fromkeys(train.notes + evald.notes)),
    }
