"""The one training path: ``run(spec, emit, cancel)``.

Both front ends (headless CLI and TUI) call this; it reports only through ``emit`` and stops
when ``cancel`` is set (checked after every optimizer step). Whatever happens — completion,
an exception, out-of-memory, NaN loss, cancellation, Ctrl+C — a `RunRecord` is built from
what was measured and saved atomically; if the runs folder cannot be written the record goes
to a fallback folder and the `RunFinished` event says where.

Measurement rules (docs/design.md): train time excludes evaluation; torch peak counters are reset
at the start of the run; NVML is sampled by a thread every 0.5 s; parameter counts say whether
the head is included; every record carries its environment.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ftbench import __version__
from ftbench.engine import world as worlds
from ftbench.engine.events import Emit, GpuSample, Log, RunFinished, RunStarted, ignore
from ftbench.errors import FtbenchError
from ftbench.results.record import RunRecord
from ftbench.results.store import StoreError, check_run_id, new_run_id, save_record
from ftbench.spec import RunSpec
from ftbench.terms import json_safe


@dataclass
class Hooks:
    """Fault-injection points for tests (never set in normal use).

    ``before_train`` runs after the model is built; ``on_step(n)`` inside training step n, before its forward pass
    (raise from it to simulate a crash or OOM mid-training); ``nvml_fault`` inside each NVML
    sample; ``loss_override`` multiplies the loss (float('nan') forces divergence);
    ``save`` replaces `save_record` (to simulate an unwritable folder or a full disk);
    ``on_batch(n)`` runs inside the data collator for every batch built, training and evaluation,
    counting from 1 (raise from it to simulate a data-loading failure); ``gpu_sampler(sample)``
    stands in for the NVML query and fills a `TelemetrySample` (a simulated GPU, so NVML
    failures can be injected on a machine without one); ``wrap_model(model)`` replaces the built
    model (an oracle whose outputs are known, to test the evaluation path end to end);
    ``on_probe(size)`` runs before each `batch_size = "auto"` probe (raise an out-of-memory
    error from it to simulate a size that does not fit).
    """

    before_train: Callable[[], None] | None = None
    on_step: Callable[[int], None] | None = None
    nvml_fault: Callable[[], None] | None = None
    on_batch: Callable[[int], None] | None = None
    gpu_sampler: Callable[[Any], None] | None = None
    wrap_model: Callable[[Any], Any] | None = None
    on_probe: Callable[[int], None] | None = None
    loss_override: float | None = None
    save: Callable[[RunRecord, Any], Path] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _exc_text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # an exception whose __str__ fails must not lose the record
        return ""


def _one_line(exc: BaseException) -> str:
    text = _exc_text(exc).strip().splitlines()
    first = text[0] if text else ""
    if isinstance(exc, FtbenchError):
        return first or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


_OOM_TEXT = ("out of memory",
             # torch's CPU allocator: "DefaultCPUAllocator: not enough memory: you tried to
             # allocate ..." (older releases: "can't allocate memory")
             "not enough memory", "can't allocate memory")


def _is_oom(exc: BaseException) -> bool:
    name = exc.__class__.__name__
    text = _exc_text(exc).lower()
    return name == "OutOfMemoryError" or isinstance(exc, MemoryError) \
        or any(needle in text for needle in _OOM_TEXT)


def _emit_quietly(emit: Emit, event: Any) -> None:
    """Emit on the failure and save paths: a front end that raises (a closed pipe, a UI bug)
    must not stop the record from being saved."""
    try:
        emit(event)
    except Exception:
        pass


def run(
    spec: RunSpec,
    emit: Emit = ignore,
    cancel: threading.Event | None = None,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    hooks: Hooks | None = None,
    world: worlds.World | None = None,
    environment: dict[str, Any] | None = None,
) -> RunFinished:
    """Train and evaluate one method on one model/dataset/seed; save and return its record.

    Under torchrun (``world`` from the environment by default) every rank calls this; rank 0
    alone emits and saves, the others return their record unsaved (``path`` None).
    ``environment`` adds facts the caller knows to ``record.environment`` (the device a
    parallel queue pinned the run to).
    """
    cancel = cancel or threading.Event()
    hooks = hooks or Hooks()
    world = world or worlds.from_env()
    if not world.is_main:
        emit = ignore
    if run_id is not None:
        check_run_id(run_id)  # refuse before training, not at save time
    record = RunRecord(
        run_id=run_id or new_run_id(spec.preset, spec.method.name, spec.seed),
        preset=spec.preset,
        method=spec.method.name,
        status="failed",
        created_at=_now(),
        spec=spec.to_dict(),
        ftbench_version=__version__,
    )
    record.references = [dict(method=r.method, metrics=dict(r.metrics), note=r.note)
                         for r in spec.references]
    session = _Session(spec, record, emit, cancel, hooks)
    session.runs_dir = runs_dir
    session.world = world
    session.extra_environment = dict(environment or {})
    reraise: BaseException | None = None
    try:
        session.execute()
    except KeyboardInterrupt:
        record.status = "cancelled"
        progress = session.callback.progress if session.callback else None
        record.error = (f"cancelled at step {progress.step} of {progress.total_steps}"
                        if progress and progress.total_steps else "cancelled before training started")
    except Exception as exc:  # every failure becomes a saved record, never a lost run
        record.status = "failed"
        record.error = _failure_line(exc)
        if os.environ.get("FTBENCH_DEBUG"):
            import traceback

            traceback.print_exc()
        _emit_quietly(emit, Log(record.run_id, "error", record.error))
    except BaseException as exc:  # SystemExit and friends: save, then let them through
        record.status = "failed"
        record.error = _failure_line(exc)
        reraise = exc
    finally:
        try:
            session.finish()
        except Exception as exc:  # e.g. a sticky CUDA error at the final sync: keep what we have
            message = f"measurements incomplete: {_one_line(exc)}"
            record.error = record.error or message
            _emit_quietly(emit, Log(record.run_id, "warning", message))
    if world.is_main and not (world.distributed and record.status == "failed"):
        finished = _save(record, runs_dir, emit, hooks)
    elif world.is_main:
        # Under torchrun a failure is saved by the parent, which knows which rank failed
        # first (a peer's death reaches rank 0 as a collective error); it gets the record here.
        _null_non_finite(record)
        finished = RunFinished(record, None)
        _emit_quietly(emit, finished)
    else:
        _null_non_finite(record)
        finished = RunFinished(record, None)
    if reraise is not None:
        raise reraise
    return finished


def save_failed(
    spec: RunSpec,
    error: str,
    *,
    runs_dir: str | os.PathLike[str] | None = None,
    emit: Emit = ignore,
    hooks: Hooks | None = None,
    run_id: str | None = None,
    measured: RunRecord | None = None,
    environment: dict[str, Any] | None = None,
    status: str = "failed",
) -> RunFinished:
    """Save a `failed` record for a run that could not start or whose front end failed around
    it (outside `run()`): the same record writer, fallback folder and events as `run()`.

    The parent of a torchrun job (or of a queue worker) saves with it too: ``run_id`` is the
    id the workers were given, ``measured`` what rank 0 measured before the run failed (kept,
    with ``status`` and ``error`` set here), ``environment`` facts only the parent knows (the
    rank that failed first). ``status`` is ``failed``, or ``cancelled`` for a run stopped
    before any process reported it.
    """
    now = _now()
    record = measured or RunRecord(
        run_id=run_id or new_run_id(spec.preset, spec.method.name, spec.seed),
        preset=spec.preset,
        method=spec.method.name,
        status=status,
        created_at=now,
        finished_at=now,
        spec=spec.to_dict(),
        error=error,
        ftbench_version=__version__,
    )
    if measured is None:
        record.references = [dict(method=r.method, metrics=dict(r.metrics), note=r.note)
                             for r in spec.references]
    record.status, record.error = status, error
    record.environment.update(environment or {})
    return _save(record, runs_dir, emit, hooks or Hooks())


def _failure_line(exc: BaseException) -> str:
    if _is_oom(exc):
        return ("out of memory: " + _one_line(exc)[:200] +
                " — try a smaller batch_size or max_length, gradient_checkpointing, or qlora")
    if "contains custom code which must be executed" in _exc_text(exc):
        # transformers names its own argument on a later line; name ftbench's flag instead
        return _one_line(exc) + " — pass --trust-remote-code to run the model folder's Python " \
            "code (trust_remote_code is off by default)"
    return _one_line(exc)


def _save(record: RunRecord, runs_dir: Any, emit: Emit, hooks: Hooks) -> RunFinished:
    _null_non_finite(record)
    saver = hooks.save or save_record
    try:
        path = saver(record, runs_dir)
        event = RunFinished(record, str(path))
    except Exception as exc:  # a folder, a disk or a value that will not take it: never lose the run
        why = str(exc) if isinstance(exc, (StoreError, OSError)) else _one_line(exc)
        fallback: Any = "<tempdir>/ftbench-unsaved"
        try:
            fallback = Path(tempfile.gettempdir()) / "ftbench-unsaved"
            path = save_record(record, fallback)
            message = f"{why}; record saved to {path} instead"
            event = RunFinished(record, str(path), save_error=message)
        except Exception as exc2:
            message = (f"{why}; fallback {fallback} failed too ({exc2}); "
                       "the record was not saved (it is in this run's result)")
            event = RunFinished(record, None, save_error=message)
        _emit_quietly(emit, Log(record.run_id, "error", message))
    _emit_quietly(emit, event)
    return event


def _null_non_finite(record: RunRecord) -> None:
    """NaN and infinity are not JSON: a diverged run's eval loss is stored as null ("not a
    number" is unavailable, not invented), so the record can always be written."""
    for name in ("params", "timing", "memory", "metrics", "series", "data_info", "model_info",
                 "environment", "references", "baseline", "samples"):
        setattr(record, name, json_safe(getattr(record, name)))


class _Session:
    """The state of one run while it executes (kept off `run()` to keep that readable)."""

    def __init__(self, spec: RunSpec, record: RunRecord, emit: Emit, cancel: threading.Event,
                 hooks: Hooks) -> None:
        self.spec = spec
        self.record = record
        self.emit = emit
        self.cancel = cancel
        self.hooks = hooks
        self.telemetry: Any = None
        self.callback: Any = None
        self.trainer: Any = None
        self.torch: Any = None
        self.device = "cpu"
        self.t_start = time.perf_counter()
        self.final_eval_s = 0.0
        self.compiled = False
        self.first_step_s: float | None = None
        self.finished = False
        self.runs_dir: Any = None
        self.workdir: str | None = None
        self.trust_remote_code = spec.trust_remote_code
        self.allow_pickle = spec.allow_pickle
        self.world = worlds.World()
        self.extra_environment: dict[str, Any] = {}
        self.side_group: Any = None  # gloo group for host-side agreement (cancel, totals)
        self.trained = False  # every rank left trainer.train() at the same step
        self.generative: Any = None  # causal-lm: base vs tuned (engine/generative.py)

    def log(self, message: str, level: str = "info") -> None:
        self.emit(Log(self.record.run_id, level, message))

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise KeyboardInterrupt

    # --- the run -------------------------------------------------------------------------
    def execute(self) -> None:
        spec = self.spec
        self.log(f"{spec.preset} · {spec.method.name} · {spec.model} · {spec.data.name} · seed {spec.seed}")
        from ftbench.quiet import quiet_libraries

        quiet_libraries()
        import torch

        self.torch = torch
        from ftbench.engine import environment

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and self.world.distributed:  # GPU only: before any CUDA use
            torch.cuda.set_device(worlds.cuda_device(self.world))
        self.record.environment = environment.collect(
            self.device, torch, cuda_index=worlds.cuda_device(self.world),
            nvml_index=worlds.nvml_index(self.world))
        self.record.environment.update(self.extra_environment)
        if self.world.distributed:
            self.record.environment.update(world_size=self.world.size,
                                           ddp_backend=worlds.backend(self.device))
        # The spec is final (ftbench.prepare resolved it for a device): trained as it is.
        if spec.resolved_for is not None and spec.resolved_for != self.device:
            self.log(f"this run was prepared for {spec.resolved_for} and trains on {self.device}: "
                     "its sizes and plan are the ones for that device", "warning")
        for line in spec.substitutions:
            self.log(f"offline: {line}")
        if spec.sizing is not None and spec.sizing not in spec.substitutions:
            self.log(f"offline: {spec.sizing}")

        from ftbench.models import resolve_model

        ref = resolve_model(spec.model)
        self.record.model_info = ref.to_dict()
        self.allow_pickle = spec.allow_pickle or os.environ.get("FTBENCH_ALLOW_PICKLE") == "1"
        self.record.model_info.update(trust_remote_code=self.trust_remote_code,
                                      allow_pickle=self.allow_pickle)
        if self.trust_remote_code:
            self.log("trust_remote_code is on: the model folder's Python code may run", "warning")
        if not self.allow_pickle:
            _refuse_pickle_only(ref.path)
        if ref.random_init:
            self.log(f"{spec.model} is random-init: figures measure the method's mechanics, not quality",
                     "warning")
        self.check_cancel()

        from ftbench.tasks.registry import get_task

        task = get_task(spec.task)
        tokenizer = _load_tokenizer(ref.path, self.trust_remote_code)
        from ftbench.engine import levers
        from ftbench.tasks import reuse

        prepared = task.prepare(spec, tokenizer, self.log,
                                reuse.SHARED if levers.on("prepared_cache") else None)
        self.record.data_info = prepared.data_info
        if spec.sizing is not None:
            self.record.data_info["sizing"] = spec.sizing
        self.log(f"data: {prepared.data_info.get('source')}")
        self.check_cancel()

        if self.world.distributed:
            # After the model folder is resolved: transformers saves only on the main process
            # once a process group exists, and a tiny model is built into the cache by every rank.
            self._join_world()
        from ftbench.engine import precision as precisions

        choice = precisions.resolve(spec.train.precision, self.device, torch)
        precision = self.precision = choice.precision
        self.record.environment["precision"] = precision
        self.record.environment["precision_reason"] = choice.reason
        self.log(f"precision {choice.reason}")
        from ftbench.plan.record import prediction_for_record  # never raises; before the model loads

        self.record.prediction = prediction_for_record(spec, self.device, prepared.model_kwargs, self.log)
        model = self._build_model(ref.path, prepared, precision)
        if self.hooks.wrap_model is not None:
            model = self.hooks.wrap_model(model)
        self.check_cancel()
        if self.hooks.before_train is not None:
            self.hooks.before_train()

        self._train(model, tokenizer, prepared, precision)

    def _join_world(self) -> None:
        """Join torchrun's process group (nccl on GPUs, gloo on CPU) with a timeout, so a
        collective whose peer died raises instead of hanging; plus a gloo group for the
        host-side agreements (cancel, totals) that must not sync a GPU stream."""
        from datetime import timedelta

        import torch.distributed as dist

        timeout = timedelta(seconds=worlds.DDP_TIMEOUT_S)
        if not dist.is_initialized():
            dist.init_process_group(worlds.backend(self.device), timeout=timeout)
        self.side_group = dist.new_group(backend="gloo", timeout=timeout) \
            if worlds.backend(self.device) != "gloo" else dist.group.WORLD

    def _build_model(self, path: str, prepared: Any, precision: str) -> Any:
        torch = self.torch
        from ftbench.methods import (apply_method, count_parameters, from_pretrained_kwargs,
                                     head_module_names)

        compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
        kwargs = dict(prepared.model_kwargs)
        kwargs.update(from_pretrained_kwargs(self.spec.method, compute_dtype))
        torch.manual_seed(self.spec.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = prepared.model_class.from_pretrained(
                path, trust_remote_code=self.trust_remote_code,
                use_safetensors=None if self.allow_pickle else True, **kwargs
            )
        heads = head_module_names(model)
        # transformers 5 picks PyTorch SDPA where the architecture supports it; record it.
        self.record.model_info["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        if prepared.generative is not None:  # causal-lm: the base model, before the method
            from ftbench.engine.generative import GenerativeRun

            self.generative = GenerativeRun(prepared.generative, self.record, self.log, precision,
                                            self.device, self.spec.method.name == "qlora", path,
                                            self.emit, self.cancel.is_set)
            self.generative.before_method(model)
            self.check_cancel()
        model = apply_method(model, self.spec.method, self.spec.task)
        if self.generative is not None:
            self.generative.after_method(model, self.spec.method.name)
        counts = count_parameters(model, heads)
        self.record.params = {
            "trainable": counts.trainable,
            "total": counts.total,
            "trainable_without_head": counts.trainable_without_head,
            "head_included": True,
            "head_modules": list(heads),
            "trainable_pct": round(100.0 * counts.trainable / counts.total, 4) if counts.total else None,
        }
        self.log(f"trainable {counts.trainable:,} of {counts.total:,} parameters "
                 f"({counts.trainable_without_head:,} without the head)")
        return model

    def _train(self, model: Any, tokenizer: Any, prepared: Any, precision: str) -> None:
        torch = self.torch
        spec = self.spec
        from ftbench.engine.autobatch import resolve_compile
        from ftbench.engine.callbacks import EventCallback
        from ftbench.engine.levers import levers_off
        from ftbench.engine.trainargs import planned_steps, training_args
        from ftbench.engine.telemetry import Telemetry, reset_torch_peaks, torch_peaks

        train = spec.train
        batch_size = train.batch_size
        if batch_size == "auto":
            batch_size = self._auto_batch(model, prepared, tokenizer, precision)
            if self.world.distributed:  # every rank probed its own device: all take the smallest
                batch_size = self._agree_min(batch_size)
        steps = planned_steps(train, len(prepared.train_dataset), batch_size) or 0
        compiled, why = resolve_compile(train.torch_compile, self.device, steps, spec.method.name)
        self.compiled = compiled
        self.record.timing["batch_size"] = batch_size
        self.record.environment["torch_compile"] = compiled
        self.record.environment["torch_compile_reason"] = why
        if compiled:
            self.log(f"torch.compile on ({why}); compile time is left out of the steady-state figures")
        workdir = self.workdir = tempfile.mkdtemp(prefix="ftbench-trainer-")
        self._tracker_dirs()
        args = training_args(spec, device=self.device, precision=precision, output_dir=workdir,
                             run_name=self.record.run_id,
                             label_names=prepared.label_names_for_trainer,
                             batch_size=batch_size, compile=compiled,
                             world_size=self.world.size)
        self.record.environment["train_sampling"] = args.train_sampling_strategy
        self.record.environment["eval_sampling"] = _eval_sampling(self.world)
        self.record.environment["dataloader_workers"] = args.dataloader_num_workers
        self.record.environment["levers_off"] = sorted(levers_off())
        samples_per_step = batch_size * train.grad_accum * self.world.size
        if self.world.distributed:
            self.record.timing["world_size"] = self.world.size
            self.record.timing["global_batch_size"] = samples_per_step
            self.log(f"data parallel: {self.world.size} processes "
                     f"({worlds.backend(self.device)}), global batch {samples_per_step} = "
                     f"{batch_size} per process x {self.world.size}"
                     + (f" x {train.grad_accum} accumulation" if train.grad_accum > 1 else "")
                     + "; rates are summed over the processes")

        def on_begin(total_steps: int) -> None:
            self.emit(RunStarted(self.record.run_id, spec.preset, spec.method.name, spec.model,
                                 spec.data.name, spec.seed, total_steps, dict(self.record.params),
                                 self.device, str(prepared.data_info.get("source", ""))))

        def memory_probe() -> tuple[float | None, float | None]:
            allocated = torch.cuda.memory_allocated() / 2**20 if self.device == "cuda" else None
            rss = self.telemetry.peak_rss_mb if self.telemetry else None
            return allocated, rss

        collator = self._collator(prepared, tokenizer, compiled)
        if self.hooks.on_batch is not None:
            collator = _HookedCollator(collator, self.hooks.on_batch)
        self.callback = EventCallback(self.record.run_id, self.emit, self.cancel, samples_per_step,
                                      on_begin, prepared.metric_transform, memory_probe,
                                      self._live_tokens,
                                      lambda: int(getattr(self.trainer, "ft_samples", 0))
                                      * self.world.size,
                                      self._live_trained_tokens if prepared.generative else None)
        trainer_cls = _measured_trainer_class(self.hooks.loss_override)
        self.trainer = trainer_cls(
            model=model,
            args=args,
            train_dataset=prepared.train_dataset,
            eval_dataset=prepared.eval_dataset,
            data_collator=collator,
            compute_metrics=prepared.compute_metrics,
            callbacks=([_CancelSync(self)] if self.world.distributed else [])
            + [self.callback, _FirstStepTimer(self)],
        )
        self.trainer.ft_step_hook = self.hooks.on_step
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for cb in (PrinterCallback, ProgressCallback):
            self.trainer.remove_callback(cb)

        self.telemetry = Telemetry(use_nvml=self.device == "cuda" or self.hooks.gpu_sampler is not None,
                                   on_gpu_sample=self._on_gpu_sample,
                                   gpu_index=worlds.nvml_index(self.world),
                                   fault=self.hooks.nvml_fault, sampler=self.hooks.gpu_sampler)
        reset_torch_peaks(torch, self.device)
        self.telemetry.start()
        self.check_cancel()
        self.trainer.train()
        self.trained = True
        progress = self.callback.progress
        if progress.diverged_at is not None:
            self.record.status = "diverged"
            self.record.error = f"loss became non-finite at step {progress.diverged_at}"
        elif progress.cancelled or self.cancel.is_set():
            self.record.status = "cancelled"
            self.record.error = f"cancelled at step {progress.step} of {progress.total_steps}"
        else:
            if self.generative is not None:  # its held-out loss replaces the Trainer's final one
                self.final_eval_s += self.generative.after_training(
                    self.trainer.model, progress.step, round(progress.epoch, 4))
            elif progress.last_eval_step != self.trainer.state.global_step:
                t = time.perf_counter()
                self.trainer.evaluate()
                self.final_eval_s = time.perf_counter() - t
            self.record.status = "completed"
        allocated, reserved = torch_peaks(torch, self.device)
        self.record.memory["torch_peak_allocated_mb"] = _round(allocated)
        self.record.memory["torch_peak_reserved_mb"] = _round(reserved)
        if self.record.status == "completed" and spec.train.serving:  # opt-in; after the peaks
            from ftbench.engine.serving import measure_run

            self.record.serving = measure_run(self.trainer, prepared, spec.method.name, spec.task,
                                              self.device, precision, self.log, self.world.size)

    def _collator(self, prepared: Any, tokenizer: Any, compiled: bool) -> Any:
        from ftbench.engine import levers
        from ftbench.engine.collate import PadCollator, pad_multiple

        if prepared.collator is None and not levers.on("pad_collator"):
            from transformers import DataCollatorWithPadding

            return DataCollatorWithPadding(tokenizer)
        return prepared.collator or PadCollator(
            tokenizer.pad_token_id or 0, pad_multiple(self.device, compiled),
            self.spec.train.max_length, getattr(tokenizer, "padding_side", "right"))

    def _auto_batch(self, model: Any, prepared: Any, tokenizer: Any, precision: str) -> int:
        """`batch_size = "auto"`: probe before training (engine/autobatch.py)."""
        import gc

        from ftbench.engine.autobatch import find_batch_size, probe_step, start_size

        torch = self.torch
        # 4-bit (QLoRA) models are placed on the GPU when loaded and refuse .to()
        if self.device == "cuda" and not getattr(model, "is_loaded_in_4bit", False):
            model.to("cuda")

        def cleanup() -> None:
            gc.collect()
            if self.device == "cuda":
                torch.cuda.empty_cache()

        try_size = probe_step(model, prepared.train_dataset, self._collator(prepared, tokenizer, False),
                              self.spec.train.max_length, self.device, precision, torch,
                              hook=self.hooks.on_probe)
        found = find_batch_size(try_size, start_size(self.device, len(prepared.train_dataset)),
                                _is_oom, cleanup)
        self.record.environment["batch_size_auto"] = found.describe()
        self.log(found.describe())
        return found.batch_size

    def _tracker_dirs(self) -> None:
        """TensorBoard logs go next to the run files (``<runs>/tensorboard/<run_id>``)."""
        if "tensorboard" not in self.spec.report_to:
            return
        from ftbench.results.store import runs_dir as resolve_runs_dir

        self._tb_env = os.environ.get("TENSORBOARD_LOGGING_DIR")
        folder = self._tb_env or str(
            resolve_runs_dir(self.runs_dir) / "tensorboard" / self.record.run_id)
        os.environ["TENSORBOARD_LOGGING_DIR"] = folder  # how transformers 5 takes it
        self.record.environment["tensorboard_dir"] = folder
        self.log(f"tensorboard logs: {folder}")

    def _on_gpu_sample(self, sample: Any) -> None:
        # The allocator's peak counters are host-side bookkeeping: reading them from the
        # telemetry thread needs no device sync and never waits on the training thread.
        from ftbench.engine.telemetry import torch_peaks

        try:
            allocated, reserved = torch_peaks(self.torch, self.device)
        except Exception:  # never let a counter read stop the sampler
            allocated = reserved = None
        self.emit(GpuSample(self.record.run_id, sample.t, sample.gpu_used_mb or 0.0,
                            sample.gpu_total_mb or 0.0, sample.gpu_util,
                            _round(allocated), _round(reserved)))

    # --- always runs ---------------------------------------------------------------------
    def finish(self) -> None:
        """Fill timing, memory, metrics and series from whatever was measured. Idempotent."""
        if self.finished:
            return
        self.finished = True
        if self.workdir is not None:  # the Trainer's scratch folder: nothing is saved there
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)
        if "tensorboard" in self.spec.report_to:  # the next run gets its own folder
            if getattr(self, "_tb_env", None) is None:
                os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        record = self.record
        record.finished_at = _now()
        if self.telemetry is not None:
            self.telemetry.stop()
            record.memory["process_peak_rss_mb"] = _round(self.telemetry.peak_rss_mb)
            record.memory["nvml_peak_used_mb"] = _round(self.telemetry.peak_gpu_used_mb)
            record.series["gpu"] = self.telemetry.gpu_series
            if self.telemetry.nvml_error:
                self.log(self.telemetry.nvml_error, "warning")
                record.environment["nvml_error"] = self.telemetry.nvml_error
        record.timing["total_s"] = _round(time.perf_counter() - self.t_start, 3)
        cb = self.callback
        if cb is None:
            return
        progress = cb.progress
        if progress.t_train_begin is not None and progress.t_train_end is None:
            progress.t_train_end = time.perf_counter()
        train_s = progress.train_elapsed()
        record.series["train"] = progress.train_series
        record.series["eval"] = progress.eval_series
        if self.generative is not None:  # base at step 0 and tuned at the end, around them
            record.series["eval"] = self.generative.series(progress.eval_series)
        trainer = self.trainer
        samples = getattr(trainer, "ft_samples", 0) if trainer is not None else 0
        tokens = self._tokens_so_far() or 0
        trained = self._tokens_so_far("ft_trained_tokens") or 0
        if self.world.distributed:
            samples, tokens, trained = self._world_totals(samples, tokens, trained)
        record.timing.update({
            "train_s": _round(train_s, 3),
            "eval_s": _round(progress.eval_s + self.final_eval_s, 3),
            "steps": progress.step,
            "total_steps": progress.total_steps,
            "epochs": round(progress.epoch, 4),
            "train_samples": samples,
            "train_tokens": tokens,
            "samples_per_s": _round(samples / train_s, 2) if train_s > 0 and samples else None,
            "tokens_per_s": _round(tokens / train_s, 1) if train_s > 0 and tokens else None,
            "trained_tokens": trained or None,
            "trained_tokens_per_s": _round(trained / train_s, 1) if train_s > 0 and trained else None,
        })
        from ftbench.engine.callbacks import steady_window, warmup_steps

        steady = steady_window(progress.train_series,
                               warmup_steps(progress.total_steps, self.compiled))
        record.timing.update({key: None for key in STEADY_KEYS})
        if steady is not None:
            record.timing.update({k: steady[k] for k in STEADY_KEYS if k in steady})
        record.timing["first_step_s"] = _round(self.first_step_s, 3)
        record.timing["compile_s"] = None
        if self.compiled and self.first_step_s is not None and steady and steady["steady_steps"]:
            # step 1 compiles; what it took beyond a steady step is the compile's cost
            per_step = steady["steady_s"] / steady["steady_steps"]
            record.timing["compile_s"] = _round(max(0.0, self.first_step_s - per_step), 3)
        self._record_flops(samples, tokens, train_s, steady)
        if progress.last_eval is not None:
            record.metrics = dict(progress.last_eval)
            record.metrics["at_step"] = progress.last_eval_step
        if self.generative is not None and self.generative.tuned is not None:
            # the tuned model's measurement at the last step (the periodic evaluations' loss
            # stays in series.eval)
            record.metrics = {**self.generative.metrics(), "at_step": progress.step}

    def _agree_min(self, value: int) -> int:
        """The smallest of the ranks' values (host-side, over the gloo group)."""
        import torch.distributed as dist

        tensor = self.torch.tensor([int(value)])
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN, group=self.side_group)
        return int(tensor.item())

    def _live_tokens(self) -> int | None:
        """Tokens for the live rate: this rank's count times the world size under torchrun
        (ranks get equal sample counts; token counts differ slightly). The record's whole-run
        totals are summed over the ranks exactly (`_world_totals`)."""
        tokens = self._tokens_so_far()
        return tokens * self.world.size if tokens is not None else None

    def _live_trained_tokens(self) -> int | None:
        """Loss-bearing tokens so far, as `_live_tokens` counts every real token."""
        tokens = self._tokens_so_far("ft_trained_tokens")
        return tokens * self.world.size if tokens is not None else None

    def _world_totals(self, samples: int, tokens: int, trained: int = 0) -> tuple[int, int, int]:
        """Samples and tokens summed over the ranks, and each rank's peak memory in
        ``memory.per_rank``. Only when every rank finished training at the same step (a
        collective with a dead peer would wait for the timeout); else this rank's figures
        stay and ``per_rank`` stays null."""
        if not self.trained or self.side_group is None:
            return samples, tokens, trained
        import torch.distributed as dist

        mine = {"rank": self.world.rank, "local_rank": self.world.local_rank,
                "samples": samples, "tokens": tokens, "trained": trained,
                "nvml_index": worlds.nvml_index(self.world) if self.device == "cuda" else None,
                **{k: self.record.memory.get(k) for k in (
                    "torch_peak_allocated_mb", "torch_peak_reserved_mb", "nvml_peak_used_mb",
                    "process_peak_rss_mb")}}
        gathered: list[Any] = [None] * self.world.size
        try:
            dist.all_gather_object(gathered, mine, group=self.side_group)
        except Exception as exc:  # a peer gone at the very end: keep this rank's figures
            self.log(f"per-rank totals unavailable: {_one_line(exc)}", "warning")
            return samples, tokens, trained
        self.record.memory["per_rank"] = [
            {k: v for k, v in g.items() if k not in ("samples", "tokens", "trained")}
            for g in gathered]
        return (sum(g["samples"] for g in gathered), sum(g["tokens"] for g in gathered),
                sum(g["trained"] for g in gathered))

    def _tokens_so_far(self, counter: str = "ft_tokens") -> int | None:
        """Real tokens trained on so far (None if the counter cannot be read). Read at logging
        steps, where the Trainer has just synced for the loss, so no stall, and at the end.
        ``counter="ft_trained_tokens"``: the loss-bearing ones."""
        tokens = getattr(self.trainer, counter, 0)
        try:
            return int(tokens.item()) if hasattr(tokens, "item") else int(tokens)
        except Exception:
            return None

    def _record_flops(self, samples: int, tokens: int, train_s: float,
                      steady: dict[str, Any] | None = None) -> None:
        """Model FLOPs, achieved TFLOP/s and (on a known GPU) MFU, over the whole run and in
        steady state; see engine/flops.py."""
        model = getattr(self.trainer, "model", None)
        if model is None or not samples or not tokens or train_s <= 0:
            return
        from ftbench.engine.flops import count_training_flops, peak_tflops

        try:
            count = count_training_flops(model, tokens / samples)
        except Exception as exc:  # an exotic model must not cost the run its record
            self.log(f"FLOP count unavailable: {exc}", "warning")
            return
        total = count.total(tokens)
        achieved = total / train_s / 1e12
        peak, source = peak_tflops(self.record.environment.get("device_name"),
                                   getattr(self, "precision", "fp32"))
        self.record.timing.update({
            "train_flops": float(f"{total:.4g}"),
            "achieved_tflops": float(f"{achieved:.4g}"),
            "mfu": round(achieved / peak, 4) if peak else None,
        })
        if steady and steady.get("steady_tokens"):
            rate = count.total(steady["steady_tokens"]) / steady["steady_s"] / 1e12
            self.record.timing["steady_tflops"] = float(f"{rate:.4g}")
            self.record.timing["steady_mfu"] = round(rate / peak, 4) if peak else None
        self.record.environment["peak_tflops"] = peak
        self.record.environment["peak_tflops_source"] = source


# Steady-state throughput (after warm-up and compile), beside the whole-run figures.
STEADY_KEYS = ("warmup_steps", "steady_steps", "steady_s", "steady_samples_per_s",
               "steady_tokens_per_s", "steady_tflops", "steady_mfu", "steady_trained_tokens_per_s")


def _round(value: float | None, digits: int = 1) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _refuse_pickle_only(path: str) -> None:
    """A local folder with pickle weights only: say how to allow them, instead of the loader's
    "no file named model.safetensors" (pickle files can run code, so they stay off unless
    the user passes --allow-pickle or sets FTBENCH_ALLOW_PICKLE=1)."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        from ftbench.errors import ModelUnavailable

        raise ModelUnavailable(f"model folder {folder} has pickle weights only ({', '.join(pickles[:3])}); "
                               "ftbench loads safetensors unless you pass --allow-pickle "
                               "(pickle files can run code)")


def _eval_sampling(world: worlds.World) -> str:
    """How evaluation batches are drawn, in words (see `MeasuredTrainer._get_eval_sampler`)."""
    from ftbench.engine import levers

    if world.distributed:
        return (f"sequential (dataset order), batches split over {world.size} processes "
                "and gathered in order")
    if not levers.on("eval_sort"):
        return "sequential (dataset order)"
    return "sorted by length, longest first; predictions restored to dataset order before metrics"


def _load_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)


class _FirstStepTimer:
    """Times step 1 (one device sync, once): with torch.compile it holds the compile, reported
    apart from the steady-state figures as ``timing.first_step_s`` / ``compile_s``."""

    def __new__(cls, session: "_Session") -> Any:
        from transformers import TrainerCallback

        class FirstStep(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if state.global_step != 1 or session.callback is None:
                    return
                if session.device == "cuda":
                    session.torch.cuda.synchronize()
                session.first_step_s = session.callback.progress.train_elapsed()

        return FirstStep()


class _CancelSync:
    """Under torchrun: after every optimizer step the ranks agree whether to stop (any rank's
    cancel stops all), so no rank waits in a collective for a peer that already left. Runs
    before `EventCallback`, which then sees the shared decision. One tiny gloo all-reduce on
    the host per step; no GPU stream sync."""

    def __new__(cls, session: "_Session") -> Any:
        from transformers import TrainerCallback

        class CancelSync(TrainerCallback):
            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                import torch.distributed as dist

                flag = session.torch.tensor([1 if session.cancel.is_set() else 0])
                dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=session.side_group)
                if int(flag.item()) and not session.cancel.is_set():
                    session.cancel.set()

        return CancelSync()


class _HookedCollator:
    """Calls ``Hooks.on_batch(n)`` before each batch is collated (fault injection only)."""

    def __init__(self, inner: Callable[[Any], Any], hook: Callable[[int], None]) -> None:
        self.inner = inner
        self.hook = hook
        self.count = 0

    def __call__(self, features: Any) -> Any:
        self.count += 1
        self.hook(self.count)
        return self.inner(features)


_TRAINER_CLASSES: dict[Any, Any] = {}


def _measured_trainer_class(loss_override: float | None) -> Any:
    """A Trainer that counts samples and real tokens without a host sync per step."""
    key = loss_override
    if key in _TRAINER_CLASSES:
        return _TRAINER_CLASSES[key]
    from transformers import Trainer

    class MeasuredTrainer(Trainer):
        ft_samples: int = 0
        ft_tokens: Any = 0
        ft_trained_tokens: Any = 0   # loss-bearing tokens (causal-lm: the response tokens)
        ft_step_hook: Callable[[int], None] | None = None

        def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
            if self.ft_step_hook is not None:
                # Fault injection: fires inside the step being attempted, before its forward.
                self.ft_step_hook(int(self.state.global_step) + 1)
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

        ft_eval_order: Any = None

        def _get_eval_sampler(self, eval_dataset: Any) -> Any:
            # transformers 5 gives evaluation a LengthGroupedSampler whenever training groups
            # by length, and hands its predictions to the metrics in that shuffled order; QA
            # post-processing maps predictions to windows and questions by position (docs/design.md).
            # Here evaluation runs longest first and `evaluation_loop` restores dataset order
            # before any metric sees a prediction (engine/evalorder.py); under torchrun,
            # sequential shards gathered in order.
            from torch.utils.data import SequentialSampler

            from ftbench.engine import levers
            from ftbench.engine.evalorder import LengthSortedOrder, lengths_of

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
            from transformers.trainer_utils import EvalLoopOutput, EvalPrediction

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

        if loss_override is not None:
            def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                             num_items_in_batch: Any = None) -> Any:
                out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
                if return_outputs:
                    return out[0] * loss_override, out[1]
                return out * loss_override

    _TRAINER_CLASSES[key] = MeasuredTrainer
    return MeasuredTrainer
