"""`predict(spec)`: trainable parameters, peak memory by part, time, and whether it fits.

Everything comes from the model's config on the meta device (`ftbench.plan.meta`): parameter
counts from the method's own code, weight bytes by dtype, what autograd saves (traced at
batch 1 and 2: every saved activation has a batch dimension, so the saved bytes are a line in
the batch size, which also gives the largest batch that fits), what a forward that saves
nothing holds at once (traced the same way, in training and in evaluation mode: the
evaluation runs at its own batch size), and the analytic FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from ftbench.engine.autobatch import CPU_BATCH
from ftbench.engine.autobatch import MAX_BATCH as AUTO_MAX
from ftbench.engine.environment import cpu_name
from ftbench.engine.flops import count_training_flops
from ftbench.engine.precision import choose
from ftbench.engine.trainargs import eval_strategy
from ftbench.errors import FtbenchError
from ftbench.plan.device import DeviceInfo
from ftbench.plan.live import LINE_BATCHES, peak_lines
from ftbench.plan.memory import MB, MemoryParts, assemble
from ftbench.plan.timing import TimeEstimate, estimate_time, planned_steps
from ftbench.plan.weights import count_weights
from ftbench.spec import RunSpec

MAX_BATCH = 65_536


@dataclass(frozen=True)
class Line:
    """``intercept + slope * batch`` bytes."""

    intercept: float
    slope: float

    def at(self, batch: int) -> int:
        return int(round(self.intercept + self.slope * batch))


@dataclass(frozen=True)
class Prediction:
    model: str
    method: str
    device: DeviceInfo
    precision: str
    batch_size: int
    max_length: int
    gradient_checkpointing: bool
    trainable: int
    total: int
    trainable_without_head: int
    memory: MemoryParts
    time: TimeEstimate
    fits: bool | None           # None when the free memory is unknown
    largest_batch: int | None   # None when the free memory is unknown; 0 if batch 1 does not fit
    compares_with: str          # which measurement ``memory.peak`` (CPU: needs) predicts
    notes: tuple[str, ...] = field(default=())

    @property
    def peak_mb(self) -> float:
        return self.memory.peak / MB

    @property
    def device_total_mb(self) -> float:
        return self.memory.device_total / MB

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "method": self.method, "device": self.device.to_dict(),
            "precision": self.precision, "batch_size": self.batch_size,
            "max_length": self.max_length, "gradient_checkpointing": self.gradient_checkpointing,
            "params": {"trainable": self.trainable, "total": self.total,
                       "trainable_without_head": self.trainable_without_head},
            "memory": self.memory.to_dict(), "compares_with": self.compares_with,
            "time": self.time.to_dict(), "fits": self.fits, "largest_batch": self.largest_batch,
            "notes": list(self.notes),
        }


def resolve_precision(asked: str, device: DeviceInfo) -> str:
    """The runner's rule (`ftbench.engine.precision.choose`): auto is bf16 (fp16 on
    pre-Ampere) on CUDA; on a CPU, bf16 with native bf16 support, else fp32."""
    return choose(asked, device.kind, gpu_bf16=device.bf16, cpu_bf16=device.cpu_bf16).precision


def predict(spec: RunSpec, device: DeviceInfo, *, num_labels: int | None = None,
            records: Iterable[Any] = (), train_size: int | None = None) -> Prediction:
    """Plan one run. ``records``: saved runs to calibrate time from; ``train_size``: the
    training examples the run will see, when known better than the spec says."""
    # torch (and, through meta, transformers) only as a plan is made: ftbench.prepare imports
    # this module, through plan.runs, also to resolve runs it never plans (no torch on a CPU)
    import torch

    from ftbench.plan.meta import build_meta_model, enable_checkpointing_input_grads, load_config

    precision = resolve_precision(spec.train.precision, device)
    compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    mixed = compute_dtype if device.kind == "cuda" and precision in ("bf16", "fp16") else None
    if precision == "bf16" and device.kind == "cpu":
        mixed = torch.bfloat16
    config = load_config(spec, num_labels)
    meta = build_meta_model(spec, config, compute_dtype)
    counts = count_weights(meta.model, meta.heads)
    notes: list[str] = []

    seq = spec.train.max_length
    gc = spec.train.gradient_checkpointing
    if gc and spec.method.name == "prefix":
        raise FtbenchError("method 'prefix' cannot run with gradient checkpointing "
                           "(set gradient_checkpointing = false)")
    if gc:
        enable_checkpointing_input_grads(meta.model)
    one, two = (_trace(meta, spec.task, b, seq, mixed, device.kind) for b in (1, 2))
    activations = _activation_line(one, two, gc)
    big = _line(one.largest, two.largest)
    forward_train, forward_eval = (
        _peak_line(*(_forward_live(meta, spec.task, b, seq, mixed, device.kind, training)
                     for b in LINE_BATCHES))
        for training in (True, False))

    def forward_working_set(batch: int) -> int:
        # the Trainer's rule (`engine.trainargs`; the SFT evaluator's too): twice the
        # training batch unless eval_batch_size is set
        eval_batch = eval_forward_rows(spec, config, spec.train.eval_batch_size or 2 * batch)
        return max(forward_train.at(batch), forward_eval.at(eval_batch))

    half = sum(n for kind, n in counts.trainable_by_dtype.items() if kind in ("fp16", "bf16"))

    def parts(batch: int) -> MemoryParts:
        return assemble(counts.weight_bytes, counts.trainable_bytes, counts.trainable, half,
                        activations(batch), big.at(batch), forward_working_set(batch),
                        device.kind, device.name)

    if spec.train.batch_size == "auto":
        # what the run's probe (engine/autobatch.py) looks for: the largest power of two that
        # fits, capped there; without a free-memory figure, the CPU size
        _, most = _fit(parts, parts(1), device)
        batch = CPU_BATCH if device.kind != "cuda" or most is None else 1
        while device.kind == "cuda" and most and batch * 2 <= min(most, AUTO_MAX):
            batch *= 2
        notes.append(f'batch_size "auto": planned at {batch}, what the run\'s probe should find')
        spec = replace(spec, train=replace(spec.train, batch_size=batch))
    memory = parts(spec.train.batch_size)
    fits, largest = _fit(parts, memory, device)
    flops = count_training_flops(meta.model, float(seq))
    tokens = spec.train.batch_size * spec.train.grad_accum * seq
    steps = planned_steps(spec.train, train_size if train_size is not None else spec.data.train_size)
    time = estimate_time(flops.train_per_token * tokens, steps, model=spec.model,
                         method=spec.method.name, precision=precision, kind=device.kind,
                         device_name=device.name if device.kind == "cuda" else None,
                         cpu=cpu_name(), records=records,
                         recompute_flops=flops.forward_per_token * tokens if gc else 0.0)
    if num_labels is None and spec.task == "classification" and spec.data.name == "file":
        notes.append("labels of a data file are not read before a run: the head is sized for 2")
    if spec.train.grad_accum > 1:
        notes.append(f"gradient accumulation x{spec.train.grad_accum}: memory is per micro-batch")
    if spec.train.torch_compile:
        notes.append("torch.compile changes what is saved for backward; predicted without it")
    return Prediction(
        model=spec.model, method=spec.method.name, device=device, precision=precision,
        batch_size=spec.train.batch_size, max_length=seq, gradient_checkpointing=gc,
        trainable=counts.trainable, total=counts.total,
        trainable_without_head=counts.trainable_without_head, memory=memory, time=time,
        fits=fits, largest_batch=largest,
        compares_with=("torch.cuda.max_memory_allocated" if device.kind == "cuda"
                       else "process RSS growth from before the model is loaded, with needs "
                            "(the peak plus the heap glibc keeps)"),
        notes=tuple(notes),
    )


def eval_forward_rows(spec: RunSpec, config: Any, eval_batch: int) -> int:
    """The most sequences one evaluation forward takes. A causal LM is evaluated by the
    Trainer only every ``eval_steps`` (`engine.trainargs.eval_strategy`); otherwise only by the
    SFT evaluator, whose loss forwards take as many rows as keep their fp32 logits under
    `LOSS_LOGITS_BYTES` (its generation keeps one position's logits: less)."""
    if spec.task != "causal-lm" or eval_strategy(spec) != "no":
        return eval_batch
    # the evaluator's module imports torch: plan's modules load none at import (package doc)
    from ftbench.tasks.causal_lm_eval import loss_rows

    vocab = int(getattr(config, "vocab_size", 0) or 0)
    if vocab <= 0:
        return eval_batch
    return min(eval_batch, loss_rows(spec.train.max_length, vocab))


def _line(at_one: float, at_two: float) -> Line:
    return Line(2 * at_one - at_two, at_two - at_one)


def _activation_line(one: Any, two: Any, gc: bool) -> Any:
    """Saved bytes as a function of the batch size. Each part of the profile is a line in the
    batch; with checkpointing the peak takes a max of two of them (the block rebuilt in
    backward, or autocast's cached weight casts), so the parts stay separate."""
    other = _line(one.other, two.other)
    if not gc:
        blocks = _line(sum(one.blocks), sum(two.blocks))
        return lambda batch: other.at(batch) + blocks.at(batch)
    inputs = _line(sum(one.block_inputs), sum(two.block_inputs))
    block = _line(max(one.blocks, default=0), max(two.blocks, default=0))
    cached = _line(one.cached_copies, two.cached_copies)
    if not one.blocks:
        return lambda batch: other.at(batch)
    return lambda batch: other.at(batch) + inputs.at(batch) + max(block.at(batch), cached.at(batch))


def _fit(parts: Any, memory: MemoryParts, device: DeviceInfo) -> tuple[bool | None, int | None]:
    """Does the run fit the free memory, and the largest batch that does (binary search)."""
    free = device.free_mb
    if free is None:
        return None, None
    budget = free * MB

    def ok(batch: int) -> bool:
        return parts(batch).device_total <= budget

    if not ok(1):
        return memory.device_total <= budget, 0
    low, high = 1, 2
    while high <= MAX_BATCH and ok(high):
        low, high = high, high * 2
    high = min(high, MAX_BATCH + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if ok(mid) else (low, mid)
    return memory.device_total <= budget, low


def _trace(meta: Any, task: str, batch: int, seq: int, mixed: Any, kind: str) -> Any:
    from ftbench.plan.trace import trace_saved  # torch at its top: only as a plan is made

    return trace_saved(meta.model, meta.blocks, _inputs(task, batch, seq), mixed_dtype=mixed,
                       device=kind)


def _forward_live(meta: Any, task: str, batch: int, seq: int, mixed: Any, kind: str,
                  training: bool) -> list[int]:
    from ftbench.plan.trace import trace_forward_live  # torch at its top: only as a plan is made

    return trace_forward_live(meta.model, _inputs(task, batch, seq), mixed_dtype=mixed,
                              device=kind, training=training)


@dataclass(frozen=True)
class PeakLine:
    """The highest of several lines in the batch size (the bytes alive at each allocation of
    a forward, `ftbench.plan.live.peak_lines`)."""

    lines: tuple[tuple[int, int], ...]

    def at(self, batch: int) -> int:
        return max((a + s * batch for a, s in self.lines), default=0)


def _peak_line(at_two: list[int], at_three: list[int]) -> PeakLine:
    lines = peak_lines(at_two, at_three)
    if not lines:  # the forwards branched on the batch size: the line through the two peaks
        top_two, top_three = max(at_two, default=0), max(at_three, default=0)
        lines = [(3 * top_two - 2 * top_three, top_three - top_two)]
    return PeakLine(tuple(lines))


def _inputs(task: str, batch: int, seq: int) -> dict[str, Any]:
    """A padded batch of full sequences with the task's labels (the loss is computed in
    training and in evaluation)."""
    import torch  # only as a plan is made (see predict)

    ids = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if task == "qa":
        inputs["start_positions"] = torch.zeros(batch, dtype=torch.long, device="meta")
        inputs["end_positions"] = torch.zeros(batch, dtype=torch.long, device="meta")
    elif task == "causal-lm":  # a label per token (the logits over the vocabulary are saved)
        inputs["labels"] = torch.zeros(batch, seq, dtype=torch.long, device="meta")
    else:
        inputs["labels"] = torch.zeros(batch, dtype=torch.long, device="meta")
    return inputs


__all__ = ["Prediction", "predict", "resolve_precision"]
