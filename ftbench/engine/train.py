"""Training one run: the batch size (probed when ``auto``), the TrainingArguments, the
measured Trainer with its callbacks, telemetry around ``trainer.train()``, and how the run
ended (completed, diverged, cancelled). Imports transformers (through the Trainer): the
session imports this module once the libraries are configured.
"""

from __future__ import annotations

import gc
import tempfile
import time
from typing import TYPE_CHECKING, Any

from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ftbench.engine import agree
from ftbench.engine import world as worlds
from ftbench.engine.autobatch import find_batch_size, probe_step, resolve_compile, start_size
from ftbench.engine.callbacks import EventCallback
from ftbench.engine.events import RunStarted
from ftbench.engine.failures import is_oom
from ftbench.engine.finish import round_or_none
from ftbench.engine.levers import levers_off
from ftbench.engine.measured import (CancelSync, FirstStepTimer, MeasuredTrainer, ObservedCollator,
                                     eval_sampling, make_collator)
from ftbench.engine.serving import measure_run
from ftbench.engine.telemetry import Telemetry, nvml_sample, reset_torch_peaks, torch_peaks
from ftbench.engine.trainargs import planned_steps, training_args

if TYPE_CHECKING:
    from ftbench.engine.session import Session


def train(session: Session, model: Any, tokenizer: Any, prepared: Any) -> None:
    torch, spec, record, world = session.torch, session.spec, session.record, session.world
    device = session.device
    settings = spec.train
    batch_size = settings.batch_size
    if batch_size == "auto":
        batch_size = auto_batch(session, model, prepared, tokenizer)
        if world.distributed:  # every rank probed its own device: all take the smallest
            batch_size = agree.agree_min(batch_size, session.side_group)
    steps = planned_steps(settings, len(prepared.train_dataset), batch_size) or 0
    compiled, why = resolve_compile(settings.torch_compile, device, steps, spec.method.name)
    session.compiled = compiled
    record.timing["batch_size"] = batch_size
    record.environment["torch_compile"] = compiled
    record.environment["torch_compile_reason"] = why
    if compiled:
        session.log(f"torch.compile on ({why}); compile time is left out of the steady-state figures")
    workdir = session.workdir = tempfile.mkdtemp(prefix="ftbench-trainer-")
    session.tracker_dirs()
    args = training_args(spec, device=device, precision=session.precision, output_dir=workdir,
                         run_name=record.run_id, label_names=prepared.label_names_for_trainer,
                         batch_size=batch_size, compile=compiled, world_size=world.size)
    record.environment["train_sampling"] = args.train_sampling_strategy
    record.environment["eval_sampling"] = eval_sampling(world)
    record.environment["dataloader_workers"] = args.dataloader_num_workers
    record.environment["levers_off"] = sorted(levers_off())
    samples_per_step = batch_size * settings.grad_accum * world.size
    if world.distributed:
        record.timing["world_size"] = world.size
        record.timing["global_batch_size"] = samples_per_step
        session.log(f"data parallel: {world.size} processes "
                    f"({worlds.backend(device)}), global batch {samples_per_step} = "
                    f"{batch_size} per process x {world.size}"
                    + (f" x {settings.grad_accum} accumulation" if settings.grad_accum > 1 else "")
                    + "; rates are summed over the processes")

    def on_begin(total_steps: int) -> None:
        session.emit(RunStarted(record.run_id, spec.preset, spec.method.name, spec.model,
                                spec.data.name, spec.seed, total_steps, dict(record.params),
                                device, str(prepared.data_info.get("source", ""))))

    def memory_probe() -> tuple[float | None, float | None]:
        allocated = torch.cuda.memory_allocated() / 2**20 if device == "cuda" else None
        rss = session.telemetry.peak_rss_mb if session.telemetry else None
        return allocated, rss

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    collator = make_collator(prepared, tokenizer, device, compiled, settings.max_length)
    if session.on_batch is not None:
        collator = ObservedCollator(collator, session.on_batch)
    callback = session.callback = EventCallback(
        record.run_id, session.emit, session.cancel, samples_per_step, on_begin,
        prepared.metric_transform, memory_probe, session.live_tokens,
        lambda: int(getattr(session.trainer, "ft_samples", 0)) * world.size,
        (lambda: session.live_tokens("ft_trained_tokens")) if prepared.generative else None)
    session.first_step = FirstStepTimer(callback.progress.train_elapsed, sync)
    trainer = session.trainer = MeasuredTrainer(
        model=model,
        args=args,
        train_dataset=prepared.train_dataset,
        eval_dataset=prepared.eval_dataset,
        data_collator=collator,
        compute_metrics=prepared.compute_metrics,
        callbacks=([CancelSync(session.cancel, session.side_group)] if world.distributed else [])
        + [callback, session.first_step],
    )
    trainer.ft_on_step = session.on_step
    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)

    sampler = session.gpu_sampler or (nvml_sample if device == "cuda" else None)
    session.telemetry = Telemetry(sampler=sampler, on_gpu_sample=session.on_gpu_sample,
                                  gpu_index=worlds.nvml_index(world))
    reset_torch_peaks(torch, device)
    session.telemetry.start()
    session.check_cancel()
    trainer.train()
    session.trained = True
    ended(session, trainer, callback.progress)
    allocated, reserved = torch_peaks(torch, device)
    record.memory["torch_peak_allocated_mb"] = round_or_none(allocated)
    record.memory["torch_peak_reserved_mb"] = round_or_none(reserved)
    if record.status == "completed" and spec.train.serving:  # opt-in; after the peaks
        # The run's memory is read first: serving copies the model to merge it, which is a
        # serving cost, not the run's peak (plan vs measured would count it).
        session.stop_telemetry()
        record.serving = measure_run(trainer, prepared, spec.method.name, spec.task, device,
                                     session.precision, session.log, world.size)


def ended(session: Session, trainer: Any, progress: Any) -> None:
    """How training ended; a completed run is evaluated at its last step if it was not yet."""
    record = session.record
    if progress.diverged_at is not None:
        record.status = "diverged"
        record.error = f"loss became non-finite at step {progress.diverged_at}"
    elif progress.cancelled or session.cancel.is_set():
        record.status = "cancelled"
        record.error = f"cancelled at step {progress.step} of {progress.total_steps}"
    else:
        if session.generative is not None:  # its held-out loss replaces the Trainer's final one
            session.final_eval_s += session.generative.after_training(
                trainer.model, progress.step, round(progress.epoch, 4))
        elif progress.last_eval_step != trainer.state.global_step:
            t = time.perf_counter()
            trainer.evaluate()
            session.final_eval_s = time.perf_counter() - t
        record.status = "completed"


def auto_batch(session: Session, model: Any, prepared: Any, tokenizer: Any) -> int:
    """`batch_size = "auto"`: probe before training (engine/autobatch.py)."""
    torch, device = session.torch, session.device
    # 4-bit (QLoRA) models are placed on the GPU when loaded and refuse .to()
    if device == "cuda" and not getattr(model, "is_loaded_in_4bit", False):
        model.to("cuda")

    def cleanup() -> None:
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()

    collator = make_collator(prepared, tokenizer, device, False, session.spec.train.max_length)
    try_size = probe_step(model, prepared.train_dataset, collator, session.spec.train.max_length,
                          device, session.precision, torch, hook=session.on_probe)
    found = find_batch_size(try_size, start_size(device, len(prepared.train_dataset)), is_oom, cleanup)
    session.record.environment["batch_size_auto"] = found.describe()
    session.log(found.describe())
    return found.batch_size
