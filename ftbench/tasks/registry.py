"""Task lookup: the engine asks for a task by the name in the spec."""

from __future__ import annotations

from typing import Any

from ftbench.errors import FtbenchError


def get_task(name: str) -> Any:
    if name == "classification":
        from ftbench.tasks.classification_task import ClassificationTask

        return ClassificationTask()
    if name == "qa":
        try:
            from ftbench.tasks.qa_task import QATask
        except ImportError:
            raise FtbenchError("the qa task is not available in this version of ftbench") from None
        return QATask()
    if name == "causal-lm":
        from ftbench.tasks.causal_lm import CausalLMTask

        return CausalLMTask()
    raise FtbenchError(f"unknown task '{name}' (known: classification, qa, causal-lm)")
