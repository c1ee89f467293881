"""`ftbench plan`: exact trainable counts against real models, the memory model's mechanics,
fit and the largest batch against an injected device, the run gate, records, the command."""

from __future__ import annotations

import json
import warnings

import pytest

from ftbench.errors import FtbenchError
from ftbench.methods import METHOD_NAMES
from ftbench.plan.device import DeviceInfo
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

CPU = DeviceInfo("cpu", "test cpu", 8000.0, 4000.0, "test")
H100 = DeviceInfo("cuda", "NVIDIA H100 80GB HBM3", 81559.0, 80000.0, "test")


def spec_for(model: str, method: str, *, batch: int = 4, seq: int = 32, gc: bool = False,
             task: str = "classification", args: dict | None = None,
             precision: str = "auto") -> RunSpec:
    return RunSpec(preset="t", model=model, task=task, data=DataSpec(name="imdb", train_size=40),
                   train=TrainParams(batch_size=batch, max_length=seq, gradient_checkpointing=gc,
                                     max_steps=5, precision=precision),
                   method=MethodSpec(method, dict(args or {})))


def measured_counts(spec: RunSpec) -> tuple[int, int, int]:
    """The run's own path: from_pretrained (4-bit for QLoRA), apply_method, count_parameters."""
    import torch

    from ftbench.methods import apply_method, count_parameters, from_pretrained_kwargs, head_module_names
    from ftbench.models import resolve_model
    from ftbench.plan.meta import model_class

    kwargs = {"num_labels": 2} if spec.task == "classification" else {}
    kwargs.update(from_pretrained_kwargs(spec.method, torch.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = model_class(spec.task).from_pretrained(resolve_model(spec.model).path, **kwargs)
    heads = head_module_names(model)
    counts = count_parameters(apply_method(model, spec.method, spec.task), heads)
    return counts.trainable, counts.total, counts.trainable_without_head


def _cases() -> list[tuple[str, str, str]]:
    # minilm-l6 is what every hub preset plans and runs with --offline; the tiny models cover the
    # presets' three architectures (BERT, RoBERTa, DistilBERT).
    models = ("tiny-bert", "tiny-roberta", "tiny-distilbert", "minilm-l6")
    cases = [(m, meth, "classification") for m in models
             for meth in METHOD_NAMES if not (m == "tiny-distilbert" and meth == "prefix")]
    cases += [("tiny-bert", "lora", "qa"), ("tiny-distilbert", "adapters", "qa")]
    return cases


@pytest.mark.parametrize("model,method,task", _cases())
def test_trainable_counts_equal_the_measured_ones_exactly(model: str, method: str, task: str) -> None:
    from ftbench.methods import qlora_available
    from ftbench.plan.estimate import predict

    if method == "qlora" and not qlora_available()[0]:
        pytest.skip(qlora_available()[1])
    spec = spec_for(model, method, task=task)
    p = predict(spec, CPU)
    assert (p.trainable, p.total, p.trainable_without_head) == measured_counts(spec)


def test_non_default_method_args_are_counted_by_the_method_code() -> None:
    from ftbench.plan.estimate import predict

    for method, args in (("lora", {"r": 16, "target_modules": ["query", "key", "value"]}),
                         ("last-layer", {"layers": 2}), ("adapters", {"placement": "both"}),
                         ("prefix", {"num_virtual_tokens": 7, "prefix_projection": True})):
        spec = spec_for("tiny-bert", method, args=args)
        assert predict(spec, CPU).trainable == measured_counts(spec)[0], method


def test_minilm_counts_match_and_weights_are_fp32() -> None:
    from ftbench.plan.estimate import predict

    spec = spec_for("minilm-l6", "lora")
    p = predict(spec, CPU)
    assert p.trainable == measured_counts(spec)[0] == 74_498
    assert p.memory.weights == {"fp32": p.total * 4}


def test_activations_grow_linearly_in_batch_and_checkpointing_saves_memory() -> None:
    """The batch line fitted from traces at 1 and 2 predicts a direct trace at 7."""
    from ftbench.plan.estimate import _trace, predict
    from ftbench.plan.meta import build_meta_model, load_config

    spec = spec_for("tiny-bert", "full", batch=7, seq=24)
    import torch

    meta = build_meta_model(spec, load_config(spec, 2), torch.float32)
    direct = _trace(meta, "classification", 7, 24, None, "cpu").total
    assert predict(spec, CPU).memory.activations == direct
    plain = predict(spec_for("minilm-l6", "full", batch=8, seq=64), CPU).memory.activations
    ckpt = predict(spec_for("minilm-l6", "full", batch=8, seq=64, gc=True), CPU).memory.activations
    assert 0 < ckpt < plain / 2


@pytest.mark.parametrize("model,method,mixed", [
    (model, method, mixed) for model in ("tiny-bert", "tiny-roberta", "tiny-distilbert")
    for method in ("full", "lora", "qlora", "head-only", "bitfit", "ia3", "adapters", "last-layer",
                   "prefix")
    for mixed in (False, True) if not (model == "tiny-distilbert" and method == "prefix")])
def test_meta_trace_equals_what_autograd_saves_on_a_real_model(model: str, method: str,
                                                                mixed: bool) -> None:
    """Oracle: the real model, on this CPU, in train mode (dropout on), fp32 or under CPU
    bf16 autocast, records every storage autograd saves; the meta trace (autocast emulated
    with CPU's op lists) must find the same bytes. The trace also counts the loss (4 bytes)."""
    import torch

    from ftbench.methods import apply_method, from_pretrained_kwargs, qlora_available
    from ftbench.models import resolve_model
    from ftbench.plan.estimate import _trace
    from ftbench.plan.meta import build_meta_model, load_config, model_class

    if method == "qlora" and not qlora_available()[0]:
        pytest.skip(qlora_available()[1])
    spec = spec_for(model, method, batch=3, seq=20)
    compute = torch.bfloat16 if mixed else torch.float32
    meta = build_meta_model(spec, load_config(spec, 2), compute)
    predicted = _trace(meta, "classification", 3, 20, compute if mixed else None, "cpu").total
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = model_class("classification").from_pretrained(
            resolve_model(model).path, num_labels=2, **from_pretrained_kwargs(spec.method, compute))
    real = apply_method(real, spec.method, "classification")
    real.train()
    own = {t.untyped_storage().data_ptr() for t in [*real.parameters(), *real.buffers()]}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    torch.manual_seed(0)
    ids = torch.randint(5, 100, (3, 20))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed), \
            torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        real(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.zeros(3, dtype=torch.long))
    measured = sum(saved.values())
    assert measured > 0 or method == "head-only"
    # prefix: peft's prompt-token index tensor is shared across calls on the real model (160 B)
    assert abs(predicted - measured - 4) <= (512 if method == "prefix" else 0), (predicted, measured)


def test_head_only_saves_almost_nothing_and_full_trains_everything() -> None:
    from ftbench.plan.estimate import predict

    head = predict(spec_for("minilm-l6", "head-only", batch=8, seq=64), CPU).memory
    full = predict(spec_for("minilm-l6", "full", batch=8, seq=64), CPU).memory
    assert head.activations < full.activations / 100
    assert full.gradients == full.weights_total
    assert full.optimizer == 2 * full.weights_total  # two fp32 AdamW states per fp32 weight
    assert full.master_copies == 0


def test_gpu_mixed_precision_and_fused_attention_change_what_is_saved() -> None:
    """bf16 autocast halves the matmul inputs but keeps layer-norm inputs fp32 and adds weight
    copies; the fused kernels keep no seq x seq probabilities, the CPU math path does."""
    from ftbench.plan.estimate import predict

    spec = spec_for("minilm-l6", "full", batch=8, seq=128)
    gpu = predict(spec, H100)
    cpu = predict(spec, CPU)
    assert gpu.precision == "bf16" and cpu.precision == "fp32"
    assert gpu.memory.activations < cpu.memory.activations / 2
    assert gpu.memory.workspace > 0 and gpu.memory.outside_allocator > 0
    assert gpu.compares_with == "torch.cuda.max_memory_allocated"


def test_qlora_weights_are_four_bit_with_their_state() -> None:
    from ftbench.methods import qlora_available
    from ftbench.plan.estimate import predict

    if not qlora_available()[0]:
        pytest.skip(qlora_available()[1])
    lora = predict(spec_for("minilm-l6", "lora"), H100).memory.weights
    qlora = predict(spec_for("minilm-l6", "qlora"), H100).memory.weights
    assert set(qlora) == {"fp32", "nf4", "nf4-state"}
    # 4-bit: half a byte per quantized element; the embeddings, LayerNorms, pooler and head stay fp32
    assert qlora["nf4"] * 8 < lora["fp32"] - qlora["fp32"] + 1
    assert 0 < qlora["nf4-state"] < qlora["nf4"] / 10


def test_fit_and_largest_batch_follow_the_free_memory() -> None:
    from ftbench.plan.estimate import predict

    spec = spec_for("minilm-l6", "full", batch=16, seq=128)
    roomy = predict(spec, H100)
    assert roomy.fits is True and roomy.largest_batch >= 16
    need = roomy.device_total_mb
    tight = predict(spec, DeviceInfo("cuda", "NVIDIA H100", 81559.0, need - 1, "test"))
    assert tight.fits is False and 0 < tight.largest_batch < 16
    at_largest = predict(spec_for("minilm-l6", "full", batch=tight.largest_batch, seq=128),
                         DeviceInfo("cuda", "NVIDIA H100", 81559.0, need - 1, "test"))
    assert at_largest.fits is True
    one_more = predict(spec_for("minilm-l6", "full", batch=tight.largest_batch + 1, seq=128),
                       DeviceInfo("cuda", "NVIDIA H100", 81559.0, need - 1, "test"))
    assert one_more.fits is False
    nowhere = predict(spec, DeviceInfo("cuda", "NVIDIA H100", 81559.0, 100.0, "test"))
    assert nowhere.fits is False and nowhere.largest_batch == 0
    unknown = predict(spec, DeviceInfo("cuda", "NVIDIA H100", None, None, "test"))
    assert unknown.fits is None and unknown.largest_batch is None


def test_run_gate_stops_a_run_that_does_not_fit_with_the_batch_that_does() -> None:
    from ftbench.plan.preflight import DoesNotFit, check_fit

    spec = spec_for("minilm-l6", "full", batch=16, seq=128)
    with pytest.raises(DoesNotFit, match=r"full on minilm-l6: predicted peak .* exceeds the 1,050 MB free .* "
                                         r"batch_size \d+ fits \(--force runs it anyway\)"):
        check_fit([spec], DeviceInfo("cuda", "NVIDIA H100", 81559.0, 1050.0, "test"))
    check_fit([spec], H100)   # fits: nothing raised
    check_fit([spec], CPU)    # a CPU is never gated


def test_time_uses_the_datasheet_then_calibrates_from_saved_runs() -> None:
    from ftbench.engine.flops import PEAK_TFLOPS
    from ftbench.plan.estimate import predict
    from ftbench.plan.timing import DEFAULT_MFU
    from ftbench.results.record import RunRecord

    spec = spec_for("minilm-l6", "lora", batch=16, seq=128)
    datasheet = predict(spec, H100).time
    peak = dict(PEAK_TFLOPS)["H100"]["bf16"]
    assert datasheet.tflops == pytest.approx(peak * DEFAULT_MFU) and "MFU" in datasheet.basis
    assert datasheet.steps == 5 and datasheet.run_s == pytest.approx(5 * datasheet.step_s)

    def record(model: str, method: str, tflops: float) -> RunRecord:
        r = RunRecord(run_id=f"r-{method}-{tflops}", preset="t", method=method, status="completed",
                      created_at="now", spec={"model": model})
        r.timing["achieved_tflops"] = tflops
        r.environment.update(device_name=H100.name, precision="bf16")
        return r

    saved = [record("minilm-l6", "lora", 40.0), record("minilm-l6", "lora", 60.0),
             record("minilm-l6", "full", 900.0), record("other", "lora", 900.0)]
    calibrated = predict(spec, H100, records=saved).time
    assert calibrated.tflops == 50.0 and "calibrated: median of 2 saved run(s)" in calibrated.basis
    assert calibrated.step_s == pytest.approx(datasheet.step_s * datasheet.tflops / 50.0)
    cpu = predict(spec, CPU).time
    assert cpu.step_s is None and "no throughput basis" in cpu.basis
    # Gradient checkpointing repeats the forward pass: same model FLOPs, more time.
    ckpt = predict(spec_for("minilm-l6", "lora", batch=16, seq=128, gc=True), H100).time
    assert ckpt.flops_per_step == datasheet.flops_per_step
    assert 1.2 < ckpt.step_s / datasheet.step_s < 1.5


def test_bad_input_is_one_line() -> None:
    from ftbench.plan.estimate import predict

    with pytest.raises(FtbenchError, match="fp16 needs a CUDA GPU"):
        predict(spec_for("tiny-bert", "full", precision="fp16"), CPU)
    with pytest.raises(FtbenchError, match="gradient checkpointing"):
        predict(spec_for("tiny-bert", "prefix", gc=True), CPU)
    with pytest.raises(FtbenchError, match="prefix"):
        predict(spec_for("tiny-distilbert", "prefix"), CPU)


def test_record_keeps_the_prediction_and_old_records_read_as_null() -> None:
    from ftbench.results.record import RecordError, RunRecord, parse_record

    r = RunRecord(run_id="r1", preset="t", method="full", status="completed", created_at="now",
                  spec={"model": "tiny-bert"})
    doc = r.to_dict()
    assert doc["prediction"] is None
    doc.pop("prediction")                       # a record written before predictions existed
    assert parse_record(doc).prediction is None
    doc["prediction"] = {"memory": {"peak_mb": 1.0}}
    assert parse_record(doc).prediction == {"memory": {"peak_mb": 1.0}}
    doc["prediction"] = "big"
    with pytest.raises(RecordError, match="prediction"):
        parse_record(doc)


def test_a_run_stores_its_prediction_next_to_what_it_measured(tmp_path) -> None:
    from ftbench.engine.runner import run
    from ftbench.plan.record import prediction_for_record
    from ftbench.results.store import load_runs

    spec = RunSpec(preset="t", model="tiny-bert", task="classification",
                   data=DataSpec(name="synthetic-sentiment", train_size=16, eval_size=8),
                   train=TrainParams(batch_size=4, max_length=32, max_steps=2, logging_steps=1),
                   method=MethodSpec("lora"))
    finished = run(spec, runs_dir=tmp_path, predict=prediction_for_record)  # as the front ends do
    assert finished.record.status == "completed"
    [saved] = load_runs(tmp_path).records
    assert saved.prediction["params"]["trainable"] == saved.params["trainable"]
    assert saved.prediction["compares_with"].startswith("process RSS growth from before the model is loaded")
    assert saved.prediction["rss_window"]["how"] == "kernel high-water mark"
    assert saved.prediction["memory"]["peak_mb"] > 0
    from ftbench.plan.judge import prediction_error

    judged = prediction_error(saved)
    assert judged is not None and judged.trainable_exact is True
    assert judged.measured_mb == pytest.approx(saved.memory["process_peak_rss_mb"]
                                               - saved.prediction["baseline_rss_mb"])


def test_prediction_error_reads_the_matching_measurement() -> None:
    from ftbench.plan.judge import prediction_error
    from ftbench.results.record import RunRecord

    r = RunRecord(run_id="r", preset="t", method="lora", status="completed", created_at="now", spec={})
    assert prediction_error(r) is None                      # an old record: no prediction
    r.params["trainable"] = 10
    r.prediction = {"device": {"kind": "cuda"}, "memory": {"peak_mb": 1100.0},
                    "params": {"trainable": 10}, "baseline_rss_mb": 500.0}
    assert prediction_error(r) is None                      # nothing measured yet
    r.memory.update(torch_peak_allocated_mb=1000.0, process_peak_rss_mb=9000.0)
    e = prediction_error(r)
    assert (e.measured_mb, e.trainable_exact, e.measure) == (1000.0, True, "torch.cuda.max_memory_allocated")
    assert e.error == pytest.approx(0.10)
    r.prediction["device"]["kind"] = "cpu"
    r.prediction["params"]["trainable"] = 11
    e = prediction_error(r)
    assert e.measured_mb == 8500.0 and e.trainable_exact is False


def test_a_failing_prediction_never_fails_the_run(monkeypatch) -> None:
    from ftbench.plan import estimate
    from ftbench.plan.record import prediction_for_record

    def boom(*args, **kwargs):
        raise RuntimeError("planner bug")

    monkeypatch.setattr(estimate, "predict", boom)
    logged = []
    assert prediction_for_record(spec_for("tiny-bert", "full"), "cpu", {},
                                 lambda m, level: logged.append((level, m))) is None
    assert logged == [("warning", "no prediction for this run: RuntimeError: planner bug")]


# --- the command -----------------------------------------------------------------------------

def _plan(capsys, *argv: str) -> tuple[int, str, str]:
    from ftbench.cli import main

    code = main(["plan", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_json_for_quickstart_matches_predict(capsys) -> None:
    code, out, err = _plan(capsys, "--preset", "quickstart", "--json", "--device", "cpu",
                           "--free-mb", "4000", "--max-steps", "3")
    assert code == 0, err
    doc = json.loads(out)
    assert [r["method"] for r in doc["runs"]] == ["full", "lora", "head-only"]
    full = doc["runs"][0]
    assert full["params"]["trainable"] == 22_713_986 and full["time"]["steps"] == 3
    assert full["device"]["free_mb"] == 4000.0 and full["fits"] is True


@pytest.mark.parametrize("preset", ["bert-sentiment", "bert-synthetic", "distilbert-sentiment140",
                                    "imdb-strategies", "lora-qa", "peft-synthetic", "quickstart",
                                    "roberta-imdb-peft"])
def test_plan_every_preset_offline(capsys, preset: str) -> None:
    from ftbench.methods import qlora_available

    code, out, err = _plan(capsys, "--preset", preset, "--offline", "--device", "cuda",
                           "--gpu-name", "H100", "--free-mb", "80000")
    if "qlora" in err and not qlora_available()[0]:
        assert code == 1
    else:
        assert code == 0, err
    assert "ftbench plan" in out and "PEAK" in out


def test_plan_hub_preset_without_the_hub_is_one_line(capsys) -> None:
    code, out, err = _plan(capsys, "--preset", "roberta-imdb-peft")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--offline" in err


def test_plan_table_shows_the_reported_memory_beside_the_prediction(capsys) -> None:
    code, out, err = _plan(capsys, "--preset", "roberta-imdb-peft", "--offline", "--method", "full,lora",
                           "--device", "cuda", "--gpu-name", "Tesla T4", "--free-mb", "15000")
    assert code == 0, err
    assert "reported" in out and "2,423" in out and "926" in out


def test_plan_bad_flags_exit_2(capsys) -> None:
    assert _plan(capsys, "--preset", "quickstart", "--free-mb", "-1")[0] == 2
    assert _plan(capsys, "--preset", "quickstart", "--gpu-name", "H100")[0] == 2
    assert _plan(capsys, "--preset", "no-such-preset")[0] == 2


def test_run_refuses_before_loading_anything_unless_forced(capsys, monkeypatch) -> None:
    """`ftbench run` on a GPU whose free memory is below the predicted peak: one line, exit 2,
    nothing trained; --force skips the check."""
    import ftbench.headless
    import ftbench.prepare
    from ftbench.cli import main
    from ftbench.plan import device as device_module

    small = DeviceInfo("cuda", "NVIDIA H100", 81559.0, 700.0, "test")
    monkeypatch.setattr(device_module, "probe_device", lambda index=0: small)
    monkeypatch.setattr(ftbench.prepare, "_torch_uses_cuda", lambda: True)  # a GPU torch can use
    started = []
    monkeypatch.setattr(ftbench.headless, "run_specs", lambda *a, **k: started.append(a) or 0)
    code = main(["run", "--preset", "quickstart", "--headless", "--method", "full"])
    err = capsys.readouterr().err
    assert code == 2 and not started
    last = err.strip().splitlines()[-1]  # (earlier lines: the one-time bundle fetch of the config)
    assert last.startswith("ftbench: error: full on minilm-l6: predicted peak ")
    assert "exceeds the 700 MB free" in last and last.endswith("(--force runs it anyway)")
    assert main(["run", "--preset", "quickstart", "--headless", "--method", "full", "--force"]) == 0
    assert len(started) == 1


def test_checkpointed_activations_follow_a_direct_trace_at_large_batches() -> None:
    """With checkpointing the peak is a max of two parts (the rebuilt block or autocast's
    cached casts): the prediction must agree with a direct trace on both sides of the kink."""
    import torch

    from ftbench.plan.estimate import _trace, predict
    from ftbench.plan.meta import build_meta_model, load_config

    for batch in (1, 40):
        spec = spec_for("minilm-l6", "full", batch=batch, seq=128, gc=True)
        meta = build_meta_model(spec, load_config(spec, 2), torch.bfloat16)
        direct = _trace(meta, "classification", batch, 128, torch.bfloat16, "cuda").checkpointed()
        assert predict(spec, H100).memory.activations == direct, batch
