"""One preparation (ftbench.prepare): what `ftbench plan` judges is what `ftbench run` trains,
every gate runs once, and a run that will not fit stops before anything loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ftbench.plan.device import DeviceInfo
from ftbench.presets import Overrides, load_preset

SIMULATED_GPU = DeviceInfo("cuda", "NVIDIA H100 80GB HBM3", 81559.0, 80000.0, "simulated")


@pytest.fixture
def simulated_cuda(monkeypatch: pytest.MonkeyPatch) -> DeviceInfo:
    """This machine as a CUDA one: NVML reports an H100 and torch says it can use it."""
    import ftbench.plan.device
    import ftbench.prepare

    monkeypatch.setattr(ftbench.plan.device, "probe_device", lambda index=0: SIMULATED_GPU)
    monkeypatch.setattr(ftbench.prepare, "_torch_uses_cuda", lambda: True)
    return SIMULATED_GPU


def test_plan_and_run_resolve_the_same_specs_for_lora_qa_offline_on_cuda(
        simulated_cuda: DeviceInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import ftbench.headless
    from ftbench.cli import main
    from ftbench.spec import RunSpec

    runs = str(tmp_path / "runs")
    assert main(["plan", "--preset", "lora-qa", "--offline", "--json", "--runs-dir", runs]) == 0
    planned = [RunSpec.from_dict(r["spec"]) for r in json.loads(capsys.readouterr().out)["runs"]]

    trained: list[RunSpec] = []

    def engine(specs: list[RunSpec], *args: Any, **kwargs: Any) -> int:
        trained.extend(specs)  # what the engine is handed, one run() per spec
        return 0

    monkeypatch.setattr(ftbench.headless, "run_specs", engine)
    assert main(["run", "--preset", "lora-qa", "--offline", "--headless", "--runs-dir", runs]) == 0
    assert planned == trained
    assert [r.to_dict() for r in planned] == [t.to_dict() for t in trained]
    (spec,) = trained  # the GPU's [offline] settings, in both
    assert (spec.data.train_size, spec.learning_rate, spec.resolved_for) == (20000, 1e-3, "cuda")


def test_gates_run_once_in_order_and_fit_refuses_on_a_gpu(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import ftbench.preflight
    import ftbench.results.store
    from ftbench.plan.preflight import DoesNotFit
    from ftbench.prepare import gate, prepare, resolve

    calls: list[str] = []
    monkeypatch.setattr(ftbench.preflight, "check_trackers", lambda names: calls.append("trackers"))
    monkeypatch.setattr(ftbench.preflight, "preflight", lambda specs: calls.append("hub"))
    monkeypatch.setattr(ftbench.results.store, "check_writable", lambda path: calls.append("runs"))
    tight = DeviceInfo("cuda", "small GPU", 2000.0, 600.0, "test")
    preset = load_preset("quickstart")
    with pytest.raises(DoesNotFit, match=r"full on minilm-l6: .* exceeds the 600 MB free on small "
                                         r"GPU .*\(--force runs it anyway\)"):
        prepare(preset, Overrides(methods=("full",)), device=tight, runs_dir=tmp_path)
    assert calls == ["trackers", "hub", "runs"]
    forced = prepare(preset, Overrides(methods=("full",)), device=tight, runs_dir=tmp_path, force=True)
    assert forced.gated and forced.forced and forced.plans is None  # forced: nothing planned
    calls.clear()
    assert gate(forced) is forced and calls == []  # gated once: never again
    # a CPU is never refused, and nothing is planned (or imported) for it
    cpu = DeviceInfo("cpu", "test cpu", 8000.0, 1.0, "test")
    on_cpu = prepare(preset, Overrides(), device=cpu, runs_dir=tmp_path)
    assert on_cpu.gated and on_cpu.plans is None
    # a plan made earlier (the TUI's dialog) is what the gate judges: no second prediction
    planned = resolve(preset, Overrides(methods=("full",)), tight)
    from ftbench.prepare import plan

    planned = plan(planned)
    assert planned.refusal() is not None
    import ftbench.plan.runs

    monkeypatch.setattr(ftbench.plan.runs, "plan_runs", lambda *a, **k: pytest.fail("planned twice"))
    with pytest.raises(DoesNotFit):
        gate(planned, tmp_path)


def test_overrides_are_checked_once_when_built() -> None:
    from ftbench.errors import PresetError

    with pytest.raises(PresetError, match=r"^unknown method 'lorra' \(did you mean 'lora'\?\)"):
        Overrides(methods=("lorra",))
    with pytest.raises(PresetError, match=r"^--batch-size: 0 is out of range"):
        Overrides(batch_size=0)
    assert Overrides(batch_size="auto").batch_size == "auto"
    assert Overrides(batch_size="8").batch_size == 8  # typed in the dialog


def test_planning_in_one_thread_never_puts_another_threads_model_on_meta(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The TUI plans in a worker while a run builds its real model in the training thread:
    the meta device must stay the planning thread's (accelerate's default patches
    nn.Module.register_parameter for every thread)."""
    import threading

    import torch

    import ftbench.methods
    from ftbench.plan.estimate import predict
    from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

    inside, release = threading.Event(), threading.Event()
    apply = ftbench.methods.apply_method

    def slow_apply(*args: Any, **kwargs: Any) -> Any:  # runs inside the meta context
        inside.set()
        release.wait(30)
        return apply(*args, **kwargs)

    monkeypatch.setattr(ftbench.methods, "apply_method", slow_apply)
    spec = RunSpec(preset="t", model="tiny-bert", task="classification", data=DataSpec("imdb"),
                   train=TrainParams(max_steps=2, batch_size=2, max_length=16), method=MethodSpec("full"))
    planner = threading.Thread(target=predict, args=(spec, DeviceInfo("cpu", "t", 1e4, 1e4, "t")))
    planner.start()
    try:
        assert inside.wait(60)
        assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # this thread: a real model
    finally:
        release.set()
        planner.join(60)
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"
