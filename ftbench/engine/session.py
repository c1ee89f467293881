"""One run while it executes: resolve the model and data, load and build, train
(`ftbench.engine.train`), and fill the record from whatever was measured (`finish`, which
always runs).

What a caller may replace, each passed where it is used (tests pass their own; the defaults
are the real ones): ``gpu_sampler`` (the GPU query; by default NVML on a CUDA run, none on a
CPU), ``wrap_model`` (applied to the built model), ``on_step(n)`` (inside training step n),
``on_batch(n)`` (before each batch is collated), ``on_probe(size)`` (before each
``batch_size = "auto"`` probe), ``predict`` (the prediction stored in the record).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import Any, Callable

from ftbench.engine import agree, build, environment, levers, precision as precisions
from ftbench.engine import world as worlds
from ftbench.engine.events import Emit, GpuSample, Log
from ftbench.engine.failures import now
from ftbench.engine.finish import record_flops, record_telemetry, record_timing, round_or_none
from ftbench.engine.hostmem import run_baseline
from ftbench.engine.policy import apply_policy, policy_for
from ftbench.engine.telemetry import GpuSampler, TelemetrySample, torch_peaks
from ftbench.models import resolve_model
from ftbench.quiet import quiet_libraries
from ftbench.results.record import RunRecord
from ftbench.results.store import runs_dir as resolve_runs_dir
from ftbench.spec import RunSpec
from ftbench.tasks import reuse
from ftbench.tasks.registry import get_task

# (spec, device, the task's model kwargs, log) -> the prediction document, or None
Predictor = Callable[[RunSpec, str, dict[str, Any], Callable[[str, str], None]], "dict[str, Any] | None"]


class Session:
    """The state of one run while it executes (kept off `run()` to keep that readable)."""

    def __init__(self, spec: RunSpec, record: RunRecord, emit: Emit, cancel: threading.Event,
                 world: worlds.World, runs_dir: Any = None,
                 extra_environment: dict[str, Any] | None = None, *,
                 gpu_sampler: GpuSampler | None = None,
                 wrap_model: Callable[[Any], Any] | None = None,
                 on_step: Callable[[int], None] | None = None,
                 on_batch: Callable[[int], None] | None = None,
                 on_probe: Callable[[int], None] | None = None,
                 predict: Predictor | None = None) -> None:
        self.spec = spec
        self.record = record
        self.emit = emit
        self.cancel = cancel
        self.world = world
        self.runs_dir = runs_dir
        self.gpu_sampler = gpu_sampler
        self.wrap_model = wrap_model
        self.on_step = on_step
        self.on_batch = on_batch
        self.on_probe = on_probe
        self.predict = predict
        self.extra_environment = dict(extra_environment or {})
        self.telemetry: Any = None
        self.callback: Any = None    # the EventCallback: training progress
        self.trainer: Any = None
        self.first_step: Any = None  # the FirstStepTimer
        self.torch: Any = None
        self.device = "cpu"
        self.precision = "fp32"
        self.t_start = time.perf_counter()
        self.final_eval_s = 0.0
        self.compiled = False
        self.finished = False
        self.workdir: str | None = None
        self.tb_env: str | None = None
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
        spec, record = self.spec, self.record
        self.log(f"{spec.preset} · {spec.method.name} · {spec.model} · {spec.data.name} · seed {spec.seed}")
        quiet_libraries()
        import torch  # after quiet_libraries(), which must configure the libraries first

        self.torch = torch
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and self.world.distributed:  # GPU only: before any CUDA use
            torch.cuda.set_device(worlds.cuda_device(self.world))
        record.environment = environment.collect(
            self.device, torch, cuda_index=worlds.cuda_device(self.world),
            nvml_index=worlds.nvml_index(self.world))
        record.environment.update(self.extra_environment)
        if self.world.distributed:
            record.environment.update(world_size=self.world.size,
                                      ddp_backend=worlds.backend(self.device))
        # The spec is final (ftbench.prepare resolved it for a device): trained as it is.
        if spec.resolved_for is not None and spec.resolved_for != self.device:
            self.log(f"this run was prepared for {spec.resolved_for} and trains on {self.device}: "
                     "its sizes and plan are the ones for that device", "warning")
        for line in spec.substitutions:
            self.log(f"offline: {line}")
        if spec.sizing is not None and spec.sizing not in spec.substitutions:
            self.log(f"offline: {spec.sizing}")

        ref = resolve_model(spec.model)
        record.model_info = ref.to_dict()
        policy = policy_for(spec)
        apply_policy(policy, ref.path, record.model_info, self.log)
        if ref.random_init:
            self.log(f"{spec.model} is random-init: figures measure the method's mechanics, not quality",
                     "warning")
        self.check_cancel()

        task = get_task(spec.task)
        tokenizer = build.load_tokenizer(ref.path, policy.trust_remote_code)
        prepared = task.prepare(spec, tokenizer, self.log,
                                reuse.SHARED if levers.on("prepared_cache") else None)
        record.data_info = prepared.data_info
        if spec.sizing is not None:
            record.data_info["sizing"] = spec.sizing
        self.log(f"data: {prepared.data_info.get('source')}")
        self.check_cancel()

        if self.world.distributed:
            # After the model folder is resolved: transformers saves only on the main process
            # once a process group exists, and a tiny model is built into the cache by every rank.
            self.side_group = agree.join_world(self.device)
        choice = precisions.resolve(spec.train.precision, self.device, torch)
        self.precision = choice.precision
        record.environment["precision"] = choice.precision
        record.environment["precision_reason"] = choice.reason
        self.log(f"precision {choice.reason}")
        self.record_prediction(prepared.model_kwargs)
        built = build.build_model(spec, ref.path, prepared, self.precision, self.device, torch,
                                  policy, record, self.log, self.emit, self.cancel.is_set)
        self.generative = built.generative
        model = built.model
        if self.wrap_model is not None:
            model = self.wrap_model(model)
        self.check_cancel()
        from ftbench.engine import train  # imports transformers: after quiet_libraries() too

        train.train(self, model, tokenizer, prepared)

    def record_prediction(self, model_kwargs: dict[str, Any]) -> None:
        """Just before the model loads: the plan's prediction (never raises) and the memory
        baseline it is compared with, which opens a CPU run's host-memory window."""
        predict = self.predict
        doc = predict(self.spec, self.device, model_kwargs, self.log) if predict else None
        baseline = run_baseline(self.device)  # after planning: its memory is not the run's
        if doc is not None:
            doc.update(baseline)
        self.record.prediction = doc

    def tracker_dirs(self) -> None:
        """TensorBoard logs go next to the run files (``<runs>/tensorboard/<run_id>``)."""
        if "tensorboard" not in self.spec.report_to:
            return
        self.tb_env = os.environ.get("TENSORBOARD_LOGGING_DIR")
        folder = self.tb_env or str(
            resolve_runs_dir(self.runs_dir) / "tensorboard" / self.record.run_id)
        os.environ["TENSORBOARD_LOGGING_DIR"] = folder  # how transformers 5 takes it
        self.record.environment["tensorboard_dir"] = folder
        self.log(f"tensorboard logs: {folder}")

    def on_gpu_sample(self, sample: TelemetrySample) -> None:
        # The allocator's peak counters are host-side bookkeeping: reading them from the
        # telemetry thread needs no device sync and never waits on the training thread.
        try:
            allocated, reserved = torch_peaks(self.torch, self.device)
        except Exception:  # never let a counter read stop the sampler
            allocated = reserved = None
        self.emit(GpuSample(self.record.run_id, sample.t, sample.gpu_used_mb or 0.0,
                            sample.gpu_total_mb or 0.0, sample.gpu_util,
                            round_or_none(allocated), round_or_none(reserved)))

    def stop_telemetry(self) -> None:
        """Stop sampling and put the run's memory peaks and GPU series in the record (once)."""
        if self.telemetry is not None:
            record_telemetry(self.record, self.telemetry, self.log)
            self.telemetry = None

    # --- always runs ---------------------------------------------------------------------
    def finish(self) -> None:
        """Fill timing, memory, metrics and series from whatever was measured. Idempotent."""
        if self.finished:
            return
        self.finished = True
        if self.workdir is not None:  # the Trainer's scratch folder: nothing is saved there
            shutil.rmtree(self.workdir, ignore_errors=True)
        if "tensorboard" in self.spec.report_to and self.tb_env is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)  # the next run gets its own folder
        record = self.record
        record.finished_at = now()
        self.stop_telemetry()
        record.timing["total_s"] = round_or_none(time.perf_counter() - self.t_start, 3)
        if self.callback is None:
            return
        progress = self.callback.progress
        if progress.t_train_begin is not None and progress.t_train_end is None:
            progress.t_train_end = time.perf_counter()
        record.series["train"] = progress.train_series
        record.series["eval"] = progress.eval_series
        if self.generative is not None:  # base at step 0 and tuned at the end, around them
            record.series["eval"] = self.generative.series(progress.eval_series)
        totals = (getattr(self.trainer, "ft_samples", 0) if self.trainer is not None else 0,
                  self.tokens_so_far() or 0, self.tokens_so_far("ft_trained_tokens") or 0)
        if self.world.distributed and self.trained and self.side_group is not None:
            nvml = worlds.nvml_index(self.world) if self.device == "cuda" else None
            totals = agree.world_totals(self.world, self.side_group, nvml, record.memory,
                                        *totals, self.log)
        first_step_s = self.first_step.seconds if self.first_step is not None else None
        steady = record_timing(record, progress, totals, self.final_eval_s, self.compiled,
                               first_step_s)
        record_flops(record, getattr(self.trainer, "model", None), totals[0], totals[1],
                     progress.train_elapsed(), self.precision, steady, self.log)
        if progress.last_eval is not None:
            record.metrics = dict(progress.last_eval)
            record.metrics["at_step"] = progress.last_eval_step
        if self.generative is not None and self.generative.tuned is not None:
            # the tuned model's measurement at the last step (the periodic evaluations' loss
            # stays in series.eval)
            record.metrics = {**self.generative.metrics(), "at_step": progress.step}

    def live_tokens(self, counter: str = "ft_tokens") -> int | None:
        """Tokens for the live rate: this rank's count times the world size under torchrun
        (ranks get equal sample counts; token counts differ slightly). The record's whole-run
        totals are summed over the ranks exactly (`agree.world_totals`)."""
        tokens = self.tokens_so_far(counter)
        return tokens * self.world.size if tokens is not None else None

    def tokens_so_far(self, counter: str = "ft_tokens") -> int | None:
        """Real tokens trained on so far (None if the counter cannot be read). Read at logging
        steps, where the Trainer has just synced for the loss, so no stall, and at the end.
        ``counter="ft_trained_tokens"``: the loss-bearing ones."""
        tokens = getattr(self.trainer, counter, 0)
        try:
            return int(tokens.item()) if hasattr(tokens, "item") else int(tokens)
        except Exception:
            return None
