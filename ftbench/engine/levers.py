"""Speed levers the engine pulls, and one switch to turn each off for measuring.

Each lever is on by default where it applies; ``FTBENCH_LEVERS_OFF=name,name`` turns levers off
for one process, so benchmarks/gpu.py can measure what each one gives (docs/gpu.md),
and a test can compare a run with and without one.
Runs record which levers were off (``environment.levers_off``).

- ``pad_collator``: `engine.collate.PadCollator` instead of transformers' `DataCollatorWithPadding`;
- ``pad_multiple``: pad lengths to a multiple of 8 on a GPU (64 under compile);
- ``fused_adamw``: the fused CUDA AdamW kernel instead of the per-tensor one;
- ``eval_sort``: evaluation batches sorted by length, predictions restored to dataset order
  before metrics (`engine.evalorder`); off, evaluation runs in dataset order;
- ``prepared_cache``: a preset's runs that share a tokenizer, data and max length reuse one
  tokenised copy of the data (`ftbench.tasks.reuse`); off, every run tokenises its own.
"""

from __future__ import annotations

import os

from ftbench.errors import FtbenchError

# The training step's levers (what benchmarks/gpu.py measures in steady samples/s), then the
# ones around it (evaluation, data preparation), which a training rate does not show.
LEVERS = ("pad_collator", "pad_multiple", "fused_adamw")
AROUND_TRAINING = ("eval_sort", "prepared_cache")
KNOWN = LEVERS + AROUND_TRAINING


def levers_off() -> frozenset[str]:
    """The levers ``FTBENCH_LEVERS_OFF`` turns off; an unknown name is an error, not ignored."""
    raw = os.environ.get("FTBENCH_LEVERS_OFF", "")
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    unknown = sorted(names - set(KNOWN))
    if unknown:
        raise FtbenchError(f"FTBENCH_LEVERS_OFF: unknown lever {unknown[0]!r} (known: {', '.join(KNOWN)})")
    return names


def on(name: str) -> bool:
    return name not in levers_off()
