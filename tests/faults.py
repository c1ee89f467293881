"""Fault injection through the engine's own collaborators (`ftbench.engine.runner.run`'s
``wrap_model``): what a test passes instead of the real model."""

from __future__ import annotations

import functools
from typing import Any, Callable


def scale_loss(factor: float) -> Callable[[Any], Any]:
    """A ``wrap_model`` whose model's loss is multiplied by ``factor`` (``float("nan")`` or
    ``inf`` forces divergence at step 1). The model stays itself: only its ``forward`` is
    wrapped, keeping its signature (the Trainer reads it to pick the dataset's columns)."""

    def wrap(model: Any) -> Any:
        forward = model.forward

        @functools.wraps(forward)
        def scaled(*args: Any, **kwargs: Any) -> Any:
            out = forward(*args, **kwargs)
            if getattr(out, "loss", None) is not None:
                out.loss = out.loss * factor
            return out

        model.forward = scaled
        return model

    return wrap


def raise_after_build(exc: BaseException) -> Callable[[Any], Any]:
    """A ``wrap_model`` that raises ``exc``: a failure once the model is built, before training."""

    def wrap(model: Any) -> Any:
        raise exc

    return wrap
