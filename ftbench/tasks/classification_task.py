"""Sequence classification wired for the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transformers import AutoModelForSequenceClassification

from ftbench.data import load_classification
from ftbench.spec import RunSpec
from ftbench.tasks.base import Prepared
from ftbench.tasks.classification import (
    TokenizedDataset,
    classification_metrics,
    tokenize,
)
from ftbench.tasks.reuse import TokenCache, cached, fingerprint, tokenizer_key


class ClassificationTask:
    name = "classification"

    def prepare(self, spec: RunSpec, tokenizer: Any, log: Callable[[str], None],
                cache: TokenCache | None = None) -> Prepared:
        data = load_classification(spec.data, seed=spec.seed, offline=spec.offline)
        max_length = spec.train.max_length

        def make() -> tuple[TokenizedDataset, TokenizedDataset]:
            return (tokenize(tokenizer, data.train_texts, data.train_labels, max_length, data.train_pairs),
                    tokenize(tokenizer, data.eval_texts, data.eval_labels, max_length, data.eval_pairs))

        key = (self.name, tokenizer_key(tokenizer), max_length, fingerprint(
            data.train_texts, data.train_pairs, data.train_labels,
            data.eval_texts, data.eval_pairs, data.eval_labels))
        (train, evald), reused = cached(cache, key, make, lambda d: d[0].tokens() + d[1].tokens())
        if reused:
            log("data: tokenised copy reused (same data, tokenizer and max_length as an earlier run)")
        num_labels = len(data.label_names)
        truncated = sum(1 for n in train.lengths() if n >= max_length)
        if truncated:
            log(f"{truncated} of {len(train)} training texts truncated to {max_length} tokens")

        def compute_metrics(prediction: Any) -> dict[str, Any]:
            return classification_metrics(prediction.predictions, prediction.label_ids, num_labels)

        def metric_transform(metrics: dict[str, Any]) -> dict[str, Any]:
            out = dict(metrics)
            out["labels"] = list(data.label_names)
            return out

        train_lengths = train.lengths()
        return Prepared(
            train_dataset=train,
            eval_dataset=evald,
            model_class=AutoModelForSequenceClassification,
            model_kwargs={
                "num_labels": num_labels,
                "id2label": dict(enumerate(data.label_names)),
                "label2id": {name: i for i, name in enumerate(data.label_names)},
            },
            compute_metrics=compute_metrics,
            data_info={
                "source": data.source,
                "train_size": len(train),
                "eval_size": len(evald),
                "labels": list(data.label_names),
                "train_label_counts": _counts(data.train_labels, num_labels),
                "eval_label_counts": _counts(data.eval_labels, num_labels),
                "mean_train_tokens": round(sum(train_lengths) / len(train_lengths), 1) if train_lengths else None,
                "truncated_train": truncated,
                "tokens_reused": reused,
                "notes": list(data.notes),
            },
            metric_transform=metric_transform,
        )


def _counts(labels: list[int], num_labels: int) -> list[int]:
    counts = [0] * num_labels
    for label in labels:
        counts[label] += 1
    return counts
