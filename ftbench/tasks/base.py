"""What a task hands the engine: datasets, collator, metrics, model class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ftbench.spec import RunSpec

if TYPE_CHECKING:
    from ftbench.tasks.reuse import TokenCache


@dataclass
class Prepared:
    train_dataset: Any
    eval_dataset: Any
    model_class: Any                      # e.g. AutoModelForSequenceClassification
    model_kwargs: dict[str, Any]          # num_labels, id2label ...
    compute_metrics: Callable[[Any], dict[str, Any]] | None
    data_info: dict[str, Any]             # source actually used, sizes, notes
    collator: Any = None                  # None: engine.collate.PadCollator
    label_names_for_trainer: list[str] | None = None
    metric_transform: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda m: m)
    # causal-lm: measures the base model before training and the tuned one after it, the same
    # way (`ftbench.tasks.causal_lm_eval.SFTEvaluator`); None for the other tasks
    generative: Any = None


class Task(Protocol):
    name: str

    def prepare(self, spec: RunSpec, tokenizer: Any, log: Callable[[str], None],
                cache: TokenCache | None = None) -> Prepared:
        """Load the data and tokenise it; ``cache`` holds tokenised copies earlier runs of
        this process made (`ftbench.tasks.reuse`), None to tokenise afresh."""
        ...
