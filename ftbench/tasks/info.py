"""What each task measures, in words the reports and front ends share. No heavy imports.

A task names its own primary metric (the first of `TaskInfo.primary` present in a record):
the comparison ranks by it, the live chart follows it and every summary shows it first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class TaskInfo:
    name: str
    primary: tuple[str, ...]      # the ranking metric; later names stand in when it is missing
    metrics: tuple[str, ...]      # what a table shows, in this order, when present


TASK_INFO: dict[str, TaskInfo] = {
    "classification": TaskInfo("classification", ("accuracy", "f1"),
                               ("accuracy", "precision", "recall", "f1")),
    "qa": TaskInfo("qa", ("exact_match", "f1"),
                   ("exact_match", "f1", "start_accuracy", "end_accuracy", "no_answer_rate")),
    # exact match of the generated final answer; data without checkable answers has none
    "causal-lm": TaskInfo("causal-lm", ("exact_match",),
                          ("exact_match", "perplexity", "response_loss", "general_loss",
                           "forgetting")),
}
UNKNOWN_TASK_PRIMARY: tuple[str, ...] = ("accuracy", "exact_match", "f1")
SHORT_NAMES: dict[str, str] = {"accuracy": "acc", "exact_match": "EM", "f1": "F1"}


def primary_metrics(task: str) -> tuple[str, ...]:
    """The task's primary metric and its stand-ins, in order."""
    info = TASK_INFO.get(task)
    return info.primary if info else UNKNOWN_TASK_PRIMARY


def primary_metric_in(task: str, present: Iterable[str]) -> str | None:
    """The first of the task's primary metrics among ``present`` (None: none of them)."""
    have = set(present)
    return next((name for name in primary_metrics(task) if name in have), None)


def primary_value(task: str, metrics: Mapping[str, Any]) -> tuple[str, float | None]:
    """(name, value) of the task's primary metric in a record's metrics; the first name and
    None when no candidate holds a number."""
    numbers = [k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    name = primary_metric_in(task, numbers)
    if name is None:
        return primary_metrics(task)[0], None
    return name, float(metrics[name])


def short_name(metric: str) -> str:
    """A column heading: ``acc``, ``EM``, ``F1``; other names cut to six characters."""
    return SHORT_NAMES.get(metric, metric[:6])
