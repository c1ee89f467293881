"""Spec → `transformers.TrainingArguments`: one pure, table-tested mapping.

Every device-dependent choice the engine makes for the Trainer lives here, so a test can force
the GPU branches on a CPU (length grouping, bf16/fp16, the fused optimizer, pinned memory,
compile) and read back what the Trainer will do. `training_kwargs` returns a
plain dict (easy to compare in a table-driven test); `training_args` builds the object.

Evaluation order is not set here: length grouping is a *training* sampler choice, and
transformers 5 would apply it to evaluation too; `ftbench.engine.measured`'s Trainer subclass
evaluates longest first and hands the metrics every prediction back in dataset order
(`_get_eval_sampler`, `evaluation_loop`, engine/evalorder.py).
"""

from __future__ import annotations

import math
import os
from typing import Any

from ftbench.engine import levers
from ftbench.engine.world import DDP_TIMEOUT_S, backend
from ftbench.spec import RunSpec


def group_by_length(spec: RunSpec, device: str) -> bool:
    """Length-grouped training batches: the preset's choice, else on with a GPU (less padding)."""
    asked = spec.train.group_by_length
    return device == "cuda" if asked is None else asked


def eval_strategy(spec: RunSpec) -> str:
    """When the Trainer evaluates: every ``eval_steps`` if set, else after each epoch. A causal
    LM without ``eval_steps`` is not evaluated by the Trainer at all: the SFT evaluator measures
    the tuned model's held-out loss (and more) when training ends
    (`ftbench.engine.generative`), so an epoch-end evaluation would repeat that loss."""
    if spec.train.eval_steps:
        return "steps"
    return "no" if spec.task == "causal-lm" else "epoch"


def planned_steps(train: Any, train_size: int | None, batch_size: int | None = None) -> int | None:
    """Optimizer steps the run will take (max_steps wins, as in the Trainer); None when the
    training-set size is unknown. ``batch_size``: the size `"auto"` settled on, if any."""
    if train.max_steps:
        return int(train.max_steps)
    batch = batch_size or train.batch_size
    if train_size is None or train.epochs is None or not isinstance(batch, int):
        return None
    per_epoch = math.ceil(train_size / batch / train.grad_accum)
    return max(1, math.ceil(per_epoch * train.epochs))


def training_kwargs(spec: RunSpec, *, device: str, precision: str, run_name: str = "",
                    label_names: list[str] | None = None, batch_size: int | None = None, compile: bool | None = None,
                    world_size: int = 1) -> dict[str, Any]:
    """The keyword arguments of `TrainingArguments` for this spec on this device (no output_dir).

    ``batch_size`` and ``compile`` are what the engine resolved for `batch_size = "auto"` and
    an unset `torch_compile`; without them the spec's values are used. ``world_size`` > 1
    (under torchrun) adds the DDP backend and a collective timeout, so a dead peer raises
    instead of hanging; ``batch_size`` stays per device (the global batch is times the world).
    """
    train = spec.train
    batch = batch_size or train.batch_size
    if not isinstance(batch, int):
        raise ValueError(f"batch_size {batch!r} must be resolved to a number first")
    eval_bs = train.eval_batch_size or batch * 2
    ddp: dict[str, Any] = {}
    if world_size > 1:
        # average_tokens_across_devices off: transformers 5 would multiply the loss by the
        # world size for every model whose forward takes **kwargs, including classification
        # heads that average over their own batch (logged and eval loss x2 with 2 ranks). Off,
        # each rank's loss is its batch mean and DDP averages the gradients: with equal batches
        # per rank (DistributedSampler pads) that is the global batch mean, as on one process.
        ddp = dict(ddp_backend=backend(device), ddp_timeout=DDP_TIMEOUT_S,
                   average_tokens_across_devices=False)
    return dict(
        **ddp,
        per_device_train_batch_size=batch,
        per_device_eval_batch_size=eval_bs,
        gradient_accumulation_steps=train.grad_accum,
        num_train_epochs=train.epochs if train.epochs is not None else 1.0,
        max_steps=train.max_steps if train.max_steps else -1,
        learning_rate=spec.learning_rate,
        weight_decay=train.weight_decay,
        # transformers 5: a float below 1 is a share of the total steps
        warmup_steps=train.warmup_ratio,
        logging_strategy="steps",
        logging_steps=train.logging_steps,
        # True would pull the loss to the host every step to test it (a sync per step);
        # ftbench checks the logged mean instead (callbacks.EventCallback.on_log).
        logging_nan_inf_filter=False,
        eval_strategy=eval_strategy(spec),
        eval_steps=train.eval_steps,
        # A causal LM's held-out loss is all the Trainer evaluates; kept logits (eval rows x
        # length x vocabulary: 3.1 GB for sft-quickstart) would only be gathered and dropped
        prediction_loss_only=spec.task == "causal-lm",
        save_strategy="no",
        report_to=list(spec.report_to) or "none",
        seed=spec.seed,
        data_seed=spec.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        optim="adamw_torch_fused" if device == "cuda" and levers.on("fused_adamw") else "adamw_torch",
        train_sampling_strategy="group_by_length" if group_by_length(spec, device) else "random",
        torch_compile=bool(train.torch_compile if compile is None else compile),
        # inductor by default; FTBENCH_COMPILE_BACKEND=aot_eager traces the same graphs without
        # generating kernels (how the CPU tests exercise the compiled path in seconds)
        torch_compile_backend=os.environ.get("FTBENCH_COMPILE_BACKEND") or None,
        # Batches are built in the training process: with `PadCollator` a 64 x 128 batch takes
        # 0.4 ms, and loader worker processes measured no clear gain on an H200 while printing
        # tracebacks when torn down or signalled (docs/gpu.md, speed levers). Pinned memory on a GPU.
        dataloader_num_workers=0,
        dataloader_pin_memory=device == "cuda",
        disable_tqdm=True,
        remove_unused_columns=False,
        label_names=label_names,
        log_level="error",
        run_name=run_name,
    )


def training_args(spec: RunSpec, *, device: str, precision: str, output_dir: str,
                  **kwargs: Any) -> Any:
    """`TrainingArguments` for this spec (see `training_kwargs`)."""
    # transformers only for the Trainer: plan.timing imports this module torch-free (planned_steps)
    from transformers import TrainingArguments

    return TrainingArguments(output_dir=output_dir,
                             **training_kwargs(spec, device=device, precision=precision, **kwargs))
