"""Task lookup: the engine asks for a task by the name in the spec."""

from __future__ import annotations

from typing import Any

from ftbench.errors import FtbenchError


def get_task(name: str) -> Any:
    # Each task module imports transformers at its top: loaded here, once engine.session has run
    # quiet_libraries(); the session imports this module at its top, before that.
    if name == "classification":
        from ftbench.tasks.classification_task import ClassificationTask  # see above

        return ClassificationTask()
    if name == "qa":
        try:
            from ftbench.tasks.qa_task import QATask  # not at import (see above)
        except ImportError:
            raise FtbenchError("the qa task is not available in this version of ftbench") from None
        return QATask()
    if name == "causal-lm":
        from ftbench.tasks.causal_lm import CausalLMTask  # not at import (see above)

        return CausalLMTask()
    raise FtbenchError(f"unknown task '{name}' (known: classification, qa, causal-lm)")
