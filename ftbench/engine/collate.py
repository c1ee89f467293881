"""Batch padding without the tokenizer: pre-tokenized examples → padded int64 tensors.

`DataCollatorWithPadding` pads through ``tokenizer.pad``, which walks every example in Python
and warns that it is the slow path for fast tokenizers. This collator fills one preallocated
numpy array per key instead, and can round the padded length up to a multiple (8 for tensor
cores on a GPU, 64 under ``torch.compile`` so only a few shapes are ever compiled), never past
the run's ``max_length``. With ``multiple=1`` it returns exactly what `DataCollatorWithPadding`
returns (tested), so CPU results do not change.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ftbench.engine import levers

# Inputs padded with 0 whatever the tokenizer; input_ids take the tokenizer's pad id.
_ZERO_PADDED = ("attention_mask", "token_type_ids", "special_tokens_mask")


class PadCollator:
    def __init__(self, pad_token_id: int, multiple: int = 1, max_length: int | None = None,
                 padding_side: str = "right") -> None:
        if multiple < 1:
            raise ValueError(f"multiple must be >= 1, got {multiple}")
        self.pad_token_id = int(pad_token_id)
        self.multiple = multiple
        self.max_length = max_length
        self.left = padding_side == "left"

    def padded_length(self, longest: int) -> int:
        rounded = -(-longest // self.multiple) * self.multiple
        if self.max_length is not None:
            rounded = min(rounded, max(longest, self.max_length))
        return rounded

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        first = features[0]
        batch: dict[str, Any] = {}
        seq_keys = [k for k, v in first.items() if isinstance(v, (list, tuple, np.ndarray))]
        if seq_keys:
            length = self.padded_length(max(len(f[k]) for f in features for k in seq_keys))
        for key in first:
            if key in seq_keys:
                fill = self.pad_token_id if key == "input_ids" else 0 if key in _ZERO_PADDED else -100
                out = np.full((len(features), length), fill, dtype=np.int64)
                for i, f in enumerate(features):
                    row = f[key]
                    if self.left:
                        out[i, length - len(row):] = row
                    else:
                        out[i, :len(row)] = row
                batch[key] = torch.from_numpy(out)
            else:
                batch[key] = torch.tensor([f[key] for f in features])
        if "label" in batch:  # DataCollatorWithPadding's rename, kept for parity
            batch["labels"] = batch.pop("label")
        return batch


def pad_multiple(device: str, compiled: bool) -> int:
    """Round padded lengths to 64 under compile (few shapes), 8 on a GPU (tensor-core tiles),
    not at all on a CPU (no gain; keeps CPU results identical to per-batch padding)."""
    if not levers.on("pad_multiple"):
        return 1
    if compiled:
        return 64
    return 8 if device == "cuda" else 1
