"""The Trainer as ftbench measures it: the Trainer subclass that counts samples and tokens and
evaluates in a known order, its two timing/agreement callbacks, and the data collator.

Imports transformers: loaded only once a run starts training (`ftbench.engine.train`).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from torch.utils.data import SequentialSampler
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback
from transformers.trainer_utils import EvalLoopOutput, EvalPrediction

from ftbench.engine import levers
from ftbench.engine import world as worlds
from ftbench.engine.agree import any_cancelled
from ftbench.engine.collate import PadCollator, pad_multiple
from ftbench.engine.evalorder import LengthSortedOrder, lengths_of

StepObserver = Callable[[int], None]


class MeasuredTrainer(Trainer):
    """A Trainer that counts samples and real tokens without a host sync per step.

    ``ft_on_step(n)``, when set, is called inside training step n before its forward pass
    (a test raises from it to simulate a crash or an out-of-memory error mid-training; a
    torchrun worker's fault injection kills its process there)."""

    ft_samples: int = 0
    ft_tokens: Any = 0
    ft_trained_tokens: Any = 0   # loss-bearing tokens (causal-lm: the response tokens)
    ft_on_step: StepObserver | None = None
    ft_eval_order: Any = None

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        if self.ft_on_step is not None:
            self.ft_on_step(int(self.state.global_step) + 1)
        ids = inputs.get("input_ids")
        if ids is not None:
            self.ft_samples += int(ids.shape[0])  # shape is metadata: no device sync
            mask = inputs.get("attention_mask")
            # Summed on the device; read once when the run ends.
            self.ft_tokens = self.ft_tokens + (mask.sum() if mask is not None else ids.numel())
            labels = inputs.get("labels")
            if labels is not None and labels.dim() == 2:  # token labels, shifted in the loss
                self.ft_trained_tokens = self.ft_trained_tokens + (labels[:, 1:] != -100).sum()
        return super().training_step(model, inputs, num_items_in_batch)

    def _get_eval_sampler(self, eval_dataset: Any) -> Any:
        # transformers 5 gives evaluation a LengthGroupedSampler whenever training groups
        # by length, and hands its predictions to the metrics in that shuffled order; QA
        # post-processing maps predictions to windows and questions by position (docs/design.md).
        # Here evaluation runs longest first and `evaluation_loop` restores dataset order
        # before any metric sees a prediction (engine/evalorder.py); under torchrun,
        # sequential shards gathered in order.
        self.ft_eval_order = None
        if eval_dataset is None or not hasattr(eval_dataset, "__len__"):
            return None
        if self.args.world_size > 1:
            return None
        if not levers.on("eval_sort"):
            return SequentialSampler(eval_dataset)
        self.ft_eval_order = LengthSortedOrder(lengths_of(eval_dataset))
        return self.ft_eval_order.sampler()

    def evaluation_loop(self, dataloader: Any, *args: Any, **kwargs: Any) -> Any:
        # the order of the loader built just before (`_get_eval_sampler`), used once
        order, self.ft_eval_order = self.ft_eval_order, None
        if order is None:
            return super().evaluation_loop(dataloader, *args, **kwargs)
        dataset = getattr(dataloader, "dataset", None)
        if dataset is not None and len(dataset) != len(order):  # never metrics out of order
            raise RuntimeError(f"evaluation order for {len(order)} examples, loader of {len(dataset)}")
        metrics_fn = self.compute_metrics
        if metrics_fn is not None:
            def in_dataset_order(p: Any) -> Any:
                return metrics_fn(EvalPrediction(
                    predictions=order.restore(p.predictions), label_ids=order.restore(p.label_ids),
                    inputs=order.restore(p.inputs),
                    losses=p.losses))  # one batch mean per example slot: no per-example order

            self.compute_metrics = in_dataset_order
        try:
            out = super().evaluation_loop(dataloader, *args, **kwargs)
        finally:
            self.compute_metrics = metrics_fn
        return EvalLoopOutput(predictions=order.restore(out.predictions),
                              label_ids=order.restore(out.label_ids), metrics=out.metrics,
                              num_samples=out.num_samples)


def eval_sampling(world: worlds.World) -> str:
    """How evaluation batches are drawn, in words (see `MeasuredTrainer._get_eval_sampler`)."""
    if world.distributed:
        return (f"sequential (dataset order), batches split over {world.size} processes "
                "and gathered in order")
    if not levers.on("eval_sort"):
        return "sequential (dataset order)"
    return "sorted by length, longest first; predictions restored to dataset order before metrics"


class FirstStepTimer(TrainerCallback):
    """Times step 1 (one device sync, once): with torch.compile it holds the compile, reported
    apart from the steady-state figures as ``timing.first_step_s`` / ``compile_s``.
    ``elapsed()`` is the training time so far; ``sync()`` waits for the device."""

    def __init__(self, elapsed: Callable[[], float], sync: Callable[[], None]) -> None:
        self.elapsed = elapsed
        self.sync = sync
        self.seconds: float | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step != 1:
            return
        self.sync()
        self.seconds = self.elapsed()


class CancelSync(TrainerCallback):
    """Under torchrun: after every optimizer step the ranks agree whether to stop (any rank's
    cancel stops all), so no rank waits in a collective for a peer that already left. Runs
    before `EventCallback`, which then sees the shared decision. One tiny gloo all-reduce on
    the host per step; no GPU stream sync."""

    def __init__(self, cancel: threading.Event, side: Any) -> None:
        self.cancel = cancel
        self.side = side

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        any_cancelled(self.cancel, self.side)


def make_collator(prepared: Any, tokenizer: Any, device: str, compiled: bool, max_length: int) -> Any:
    """The task's own collator, else ftbench's padding one (transformers' with the lever off)."""
    if prepared.collator is None and not levers.on("pad_collator"):
        return DataCollatorWithPadding(tokenizer)
    return prepared.collator or PadCollator(
        tokenizer.pad_token_id or 0, pad_multiple(device, compiled), max_length,
        getattr(tokenizer, "padding_side", "right"))


class ObservedCollator:
    """Calls ``on_batch(n)`` before each batch is collated, training and evaluation alike,
    counting from 1 (a test raises from it to simulate a data-loading failure)."""

    def __init__(self, inner: Callable[[Any], Any], on_batch: Callable[[int], None]) -> None:
        self.inner = inner
        self.on_batch = on_batch
        self.count = 0

    def __call__(self, features: Any) -> Any:
        self.count += 1
        self.on_batch(self.count)
        return self.inner(features)
