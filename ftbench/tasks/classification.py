"""Sequence classification: tokenisation and metrics.

Metrics are computed with numpy from the logits the Trainer gathers: accuracy, precision,
recall and F1 (binary: of the positive class, label 1; more classes: macro average) and the
confusion matrix (rows = true label, columns = predicted).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class TokenizedDataset:
    """A list of tokenised examples (unpadded); the collator pads each batch dynamically."""

    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]

    def lengths(self) -> list[int]:
        return [len(f["input_ids"]) for f in self.features]

    def tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.features)


def tokenize(
    tokenizer: Any,
    texts: Sequence[str],
    labels: Sequence[int],
    max_length: int,
    pairs: Sequence[str] | None = None,
    batch: int = 1000,
) -> TokenizedDataset:
    """Tokenise in batches with truncation and no padding (the collator pads per batch)."""
    features: list[dict[str, Any]] = []
    for start in range(0, len(texts), batch):
        chunk = list(texts[start:start + batch])
        second = list(pairs[start:start + batch]) if pairs is not None else None
        enc = tokenizer(chunk, second, truncation=True, max_length=max_length, padding=False)
        keys = [k for k in enc.keys() if k in tokenizer.model_input_names]
        for i in range(len(chunk)):
            item = {k: enc[k][i] for k in keys}
            item["labels"] = int(labels[start + i])
            features.append(item)
    return TokenizedDataset(features)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 and the confusion matrix from raw logits."""
    if isinstance(logits, tuple):
        logits = logits[0]
    preds = np.asarray(logits).argmax(axis=-1)
    labels = np.asarray(labels)
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    total = matrix.sum()
    accuracy = float(np.trace(matrix) / total) if total else 0.0
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    actual = matrix.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    if num_labels == 2:
        p, r, f = precision[1], recall[1], f1[1]
        average = "binary (positive = label 1)"
    else:
        p, r, f = precision.mean(), recall.mean(), f1.mean()
        average = "macro"
    return {
        "accuracy": accuracy,
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "confusion_matrix": matrix.tolist(),
        "average": average,
        "eval_samples": int(total),
    }
