"""Beyond one process (issue 15): torchrun data-parallel runs and the per-device queue, on CPU.

Real processes throughout: torchrun with the gloo backend, tiny random-init models, a few
steps. GPU-only paths (nccl, one CUDA device per rank, NVML per GPU) are tested as decisions
(which backend, which device, which environment per child), not run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from ftbench.distributed import wire
from ftbench.distributed.launch import Launch, Supervisor, run_distributed, torchrun_command
from ftbench.distributed.parallel import device_env, labels, parse_devices
from ftbench.engine import world as worlds
from ftbench.engine.events import Log, Step
from ftbench.engine.trainargs import training_kwargs
from ftbench.results.record import RunRecord, parse_record
from ftbench.results.store import load_runs
from test_engine import Collector, tiny_spec

TINY = """
title = "tiny"
description = "tiny distributed test preset"
reproduces = "tests"
model = "tiny-bert"
task = "classification"
seeds = 1

[data]
name = "synthetic-sentiment"
train_size = {train}
eval_size = 16

[train]
epochs = 1
batch_size = 4
learning_rate = 1e-3
max_length = 16
logging_steps = 1
eval_steps = 1000

[[methods]]
name = "{first}"

[[methods]]
name = "head-only"
"""


def preset(tmp_path: Path, train: int = 32, first: str = "lora") -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY.replace("{train}", str(train)).replace("{first}", first))
    return path


def ftbench(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ftbench.cli", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def interrupt_after_steps(proc: subprocess.Popen[str], steps: int) -> str:
    """Read until ``steps`` [step] lines were printed, send SIGINT, return all the output."""
    assert proc.stdout is not None
    seen, count = [], 0
    for line in proc.stdout:
        seen.append(line)
        count += "[step]" in line
        if count >= steps:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=90)
    return "".join(seen) + rest


# --- decisions (no processes) ------------------------------------------------------------
def test_world_from_env_and_per_rank_decisions() -> None:
    assert worlds.from_env({}) == worlds.World()  # a plain run is a world of one
    w = worlds.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"})
    assert (w.rank, w.local_rank, w.size, w.distributed, w.is_main) == (3, 1, 4, True, False)
    assert worlds.backend("cuda") == "nccl" and worlds.backend("cpu") == "gloo"
    assert worlds.cuda_device(w) == 1
    # NVML counts physical GPUs: rank with local rank 1 pinned to GPUs 2,3 reads GPU 3
    assert worlds.nvml_index(w, {"CUDA_VISIBLE_DEVICES": "2,3"}) == 3
    assert worlds.nvml_index(w, {}) == 1


@pytest.mark.parametrize("device,backend", [("cuda", "nccl"), ("cpu", "gloo")])
def test_ddp_training_arguments(device: str, backend: str) -> None:
    spec = tiny_spec()
    precision = "bf16" if device == "cuda" else "fp32"
    one = training_kwargs(spec, device=device, precision=precision)
    assert "ddp_backend" not in one and "ddp_timeout" not in one
    two = training_kwargs(spec, device=device, precision=precision, world_size=2)
    assert two["ddp_backend"] == backend and two["ddp_timeout"] == worlds.DDP_TIMEOUT_S
    assert two["average_tokens_across_devices"] is False  # else the loss is logged x world size
    assert two["per_device_train_batch_size"] == one["per_device_train_batch_size"]


def test_torchrun_command_passes_placement_through() -> None:
    local = torchrun_command(Launch(nproc_per_node=2), "job.json", python="py")
    assert local[:3] == ["py", "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in local and "--standalone" in local
    assert local[-3:] == ["-m", "ftbench.distributed.worker", "job.json"]
    multi = torchrun_command(Launch(4, 2, 1, "node0:29400"), "j", python="py")
    assert {"--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=static",
            "--rdzv-endpoint=node0:29400", "--node-rank=1", "--max-restarts=0"} <= set(multi)
    assert "--standalone" not in multi


def test_parallel_devices_and_child_environment() -> None:
    assert parse_devices("0, 2") == ["0", "2"] and parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert labels(["0", "2"]) == ["gpu0", "gpu2"] and labels(["cpu", "cpu"]) == ["cpu0", "cpu1"]
    gpu = device_env("2", 0, {"PATH": "/bin"})
    assert gpu == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "2"}
    cpu = device_env("cpu", 2, {})
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and int(cpu["OMP_NUM_THREADS"]) >= 1
    assert device_env("cpu", 2, {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def test_wire_round_trip_and_first_failure() -> None:
    kind, event = wire.decode(wire.encode(Step("r", 2, 4, 0.5, float("nan"), 1e-3, 10.0, None, 1.0, 2.0)))
    assert kind == "Step" and event.step == 2 and event.loss is None  # NaN is not JSON
    seen = Collector()
    sup = Supervisor(seen)
    sup.on_message(None, *wire.decode(wire.encode(Log("r", "info", "hi"))))
    assert seen.of(Log)[0].message == "hi"
    # rank 0 reports the peer's death later (a collective error); rank 1 failed first
    sup.on_message(None, "rank_failed", {"rank": 0, "error": "RuntimeError: Connection closed", "t": 20.0})
    sup.on_message(None, "rank_failed", {"rank": 1, "error": "out of memory: ...", "t": 10.0})
    assert sup.first_failure() == (1, "out of memory: ...")


def test_a_dead_rank_is_blamed_even_when_its_peer_reports_first() -> None:
    """Under load the peer's collective error can reach the parent before the dead rank's
    closed socket is noticed: the dead rank is still the one named."""
    sup = Supervisor(Collector())
    sup.on_message(None, "rank_failed", {"rank": 0, "error": "DistBackendError: [../gloo] "
                                         "Connection closed by peer [127.0.0.1]:1234", "t": 5.0})
    sup.on_close(SimpleNamespace(said_bye=False, closed_at=5.0, rank=0))
    sup.on_close(SimpleNamespace(said_bye=False, closed_at=9.0, rank=1))  # killed: no word
    assert sup.first_failure() == (1, "")
    # two ranks failing on their own account: the earlier one
    sup = Supervisor(Collector())
    sup.on_message(None, "rank_failed", {"rank": 1, "error": "ValueError: bad batch", "t": 3.0})
    sup.on_message(None, "rank_failed", {"rank": 0, "error": "out of memory: ...", "t": 2.0})
    assert sup.first_failure() == (0, "out of memory: ...")


def test_old_records_load_with_the_new_fields_null() -> None:
    old = RunRecord("20260101T000000-p-full-s0-aaaaaa", "p", "full", "completed", "2026", {}).to_dict()
    del old["timing"]["world_size"], old["timing"]["global_batch_size"], old["memory"]["per_rank"]
    record = parse_record(old)
    assert record.timing["world_size"] is None and record.memory["per_rank"] is None
    old["memory"]["per_rank"] = "rank 0"
    with pytest.raises(Exception, match="per_rank"):
        parse_record(old)


@pytest.mark.parametrize("flags,message", [
    (["--nproc-per-node", "0"], "--nproc-per-node: 0 is out of range"),  # the flag's Rule
    (["--nnodes", "2"], "needs --rdzv-endpoint"),
    (["--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"], "--node-rank must be between"),
    (["--rdzv-endpoint", "nohost"], "HOST:PORT"),
    (["--devices", "0,x"], "neither a GPU index nor 'cpu'"),
    (["--devices", "1,1"], "names a GPU twice"),
    (["--devices", "cpu,cpu", "--nproc-per-node", "2"], "pick one"),
])
def test_bad_placement_flags_are_one_line_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    proc = ftbench("run", "--preset", str(preset(tmp_path)), "--runs-dir", str(tmp_path / "r"), *flags)
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ftbench: error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r").exists()


def test_rendezvous_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = ftbench("run", "--preset", str(preset(tmp_path)), "--nproc-per-node", "2",
                       "--rdzv-endpoint", f"127.0.0.1:{port}", "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"rendezvous port {port} is already in use" in lines[0], proc.stderr


# --- real torchrun runs (gloo) -------------------------------------------------------------
def test_two_processes_write_one_record_and_match_one_process(tmp_path: Path, quick_cpu_runs: None) -> None:
    spec = tiny_spec(steps=4)
    events = Collector()
    two = run_distributed(replace(spec, train=replace(spec.train, batch_size=8)), events,
                          threading.Event(), runs_dir=tmp_path / "two", launch=Launch(2))
    r = two.record
    assert r.status == "completed", r.error
    assert [p.name for p in (tmp_path / "two").iterdir()] == [f"{r.run_id}.json"]
    assert r.timing["world_size"] == 2 and r.timing["global_batch_size"] == 16
    assert r.timing["train_samples"] == 4 * 16  # summed over both ranks
    assert [p["rank"] for p in r.memory["per_rank"]] == [0, 1]
    assert all(p["process_peak_rss_mb"] > 50 for p in r.memory["per_rank"])
    assert [s.step for s in events.of(Step)] == [1, 2, 3, 4]  # rank 0 only: no duplicates
    from ftbench.engine.runner import run

    one = run(spec, runs_dir=tmp_path / "one").record  # batch 16 on one process
    # Same global batch, same model init: DDP averages the ranks' gradients, so the losses
    # agree closely (transformers' default would log 2x here; data order differs a little).
    for a, b in zip(r.series["train"], one.series["train"]):
        assert abs(a["loss"] - b["loss"]) < 0.03, (r.series["train"], one.series["train"])
    assert abs(r.metrics["loss"] - one.metrics["loss"]) < 0.02


def test_a_killed_rank_fails_the_run_naming_it(tmp_path: Path) -> None:
    started = time.perf_counter()
    proc = ftbench("run", "--preset", str(preset(tmp_path, first="full")), "--method", "full",
                   "--nproc-per-node", "2", "--runs-dir", str(tmp_path / "r"), "--json",
                   env={"FTBENCH_FAULT_RANK": "1", "FTBENCH_FAULT_STEP": "2",
                        "FTBENCH_FAULT_KIND": "kill"})
    assert proc.returncode == 1, proc.stderr
    assert time.perf_counter() - started < 60  # noticed, not waited out
    [record] = load_runs(tmp_path / "r").records
    assert record.status == "failed" and record.error.startswith("rank 1: ")
    assert "SIGKILL" in record.error and record.environment["failed_rank"] == 1
    assert "Traceback" not in proc.stderr


def test_an_out_of_memory_rank_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTBENCH_FAULT_RANK", "1")
    monkeypatch.setenv("FTBENCH_FAULT_KIND", "oom")
    finished = run_distributed(tiny_spec(steps=4), Collector(), threading.Event(),
                               runs_dir=tmp_path, launch=Launch(2))
    record = load_runs(tmp_path).records[0]
    assert finished.path and record.status == "failed"
    assert record.error.startswith("rank 1: out of memory") and record.environment["failed_rank"] == 1
    assert record.series["train"][0]["step"] == 1  # what rank 0 measured is kept


def test_ctrl_c_cancels_a_two_process_run(tmp_path: Path) -> None:
    proc = start("run", "--preset", str(preset(tmp_path, 4000)), "--method", "lora",
                 "--nproc-per-node", "2", "--runs-dir", str(tmp_path / "r"))
    output = interrupt_after_steps(proc, 2)
    assert proc.returncode == 130, output
    [record] = load_runs(tmp_path / "r").records
    assert record.status == "cancelled" and record.timing["world_size"] == 2, output
    assert record.timing["steps"] >= 2 and "Traceback" not in output
    assert "data parallel: 2 processes (gloo), global batch 8 = 4 per process x 2" in output
    assert "samp/s summed over the processes" in " ".join(output.split())  # the summary says so


# --- the per-device queue ------------------------------------------------------------------
def test_devices_cpu_cpu_runs_two_at_once(tmp_path: Path) -> None:
    proc = ftbench("run", "--preset", str(preset(tmp_path)), "--devices", "cpu,cpu",
                   "--max-steps", "3", "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = load_runs(tmp_path / "r").records
    assert sorted(r.method for r in records) == ["head-only", "lora"]
    assert all(r.status == "completed" for r in records)
    assert sorted(r.environment["parallel_device"] for r in records) == ["cpu0", "cpu1"]
    assert len(list((tmp_path / "r").iterdir())) == 2  # no clobbered or stray files
    prefixed = [ln for ln in proc.stdout.splitlines() if "[step]" in ln]
    assert {ln.split()[0] for ln in prefixed} == {"[cpu0]", "[cpu1]"}
    # both ran at once: the second worker was started before the first one finished
    lines = proc.stdout.splitlines()
    queued = [i for i, ln in enumerate(lines) if "] [queue] " in ln]
    dones = [i for i, ln in enumerate(lines) if "[done]" in ln]
    assert len(queued) == 2 and max(queued) < min(dones)


def test_ctrl_c_cancels_every_parallel_run(tmp_path: Path) -> None:
    proc = start("run", "--preset", str(preset(tmp_path, 4000)), "--devices", "cpu,cpu",
                 "--runs-dir", str(tmp_path / "r"))
    output = interrupt_after_steps(proc, 4)
    assert proc.returncode == 130, output
    records = load_runs(tmp_path / "r").records
    assert [r.status for r in records] == ["cancelled", "cancelled"], output
    assert "Traceback" not in output


def test_a_parallel_worker_that_dies_is_saved_failed_by_the_parent(tmp_path: Path) -> None:
    proc = ftbench("run", "--preset", str(preset(tmp_path)), "--method", "head-only",
                   "--devices", "cpu", "--max-steps", "3", "--runs-dir", str(tmp_path / "r"),
                   env={"FTBENCH_FAULT_RANK": "0", "FTBENCH_FAULT_KIND": "kill"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [record] = load_runs(tmp_path / "r").records
    assert record.status == "failed" and "SIGKILL" in record.error
    assert record.environment["parallel_device"] == "cpu0"


def test_compare_says_when_a_group_mixes_process_counts() -> None:
    from ftbench.report.groups import _differing_settings

    spec = tiny_spec().to_dict()
    one = RunRecord("20260101T000000-p-full-s0-aaaaaa", "p", "full", "completed", "2026", spec)
    two = RunRecord("20260101T000000-p-full-s1-bbbbbb", "p", "full", "completed", "2026", spec)
    assert _differing_settings([one, two]) == ()
    two.timing["world_size"] = 2
    assert _differing_settings([one, two]) == ("world_size",)


def test_environment_names_this_ranks_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU branch forced on CPU: rank 1 pinned to GPUs 2,3 describes torch's cuda:1 and
    NVML's GPU 3 (the one it trains on), not GPU 0."""
    from types import SimpleNamespace

    from ftbench.engine import environment, telemetry

    asked: list[tuple[str, int]] = []
    fake_torch = SimpleNamespace(
        version=SimpleNamespace(cuda="12.8"), get_num_threads=lambda: 1,
        cuda=SimpleNamespace(get_device_name=lambda i: asked.append(("torch", i)) or "GPU"))

    def fake_nvml(index: int = 0) -> object:
        asked.append(("nvml", index))
        return SimpleNamespace(available=True, driver="570", total_mb=81559.0)

    monkeypatch.setattr(telemetry, "nvml_info", fake_nvml)
    w = worlds.from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    env = environment.collect("cuda", fake_torch, cuda_index=worlds.cuda_device(w),
                              nvml_index=worlds.nvml_index(w, {"CUDA_VISIBLE_DEVICES": "2,3"}))
    assert asked == [("torch", 1), ("nvml", 3)] and env["gpu_memory_mb"] == 81559.0


def test_the_launchers_load_neither_torch_nor_textual() -> None:
    code = ("import sys, ftbench.distributed.launch, ftbench.distributed.parallel, "
            "ftbench.distributed.wire, ftbench.distributed.worker, ftbench.engine.world; "
            "print(sorted(m for m in ('torch', 'textual', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


async def test_the_tui_shows_a_torchrun_run_live(tmp_path: Path) -> None:
    """`ftbench run --nproc-per-node 2` on a terminal: rank 0's events reach the live screen
    through the same queue, and the record is the torchrun one."""
    from functools import partial

    from ftbench.presets import Overrides, expand
    from ftbench.tui.app import FtbenchApp
    from ftbench.tui.messages import RunBegan, StepMetrics
    from ftbench.tui.screens.live import LiveScreen
    from ftbench.tui.widgets.memory_panel import Machine
    from tui_helpers import tiny_preset, wait_until

    preset_ = tiny_preset()
    specs = expand(preset_, Overrides(methods=("head-only",), max_steps=2))
    app = FtbenchApp(tmp_path, presets=[preset_], machine=Machine(False, reason="tests"),
                     cursor_blink=False, start=(preset_.name, specs),
                     runner=partial(run_distributed, launch=Launch(2)))
    seen: list[object] = []

    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 10, "live screen")
        await wait_until(pilot, lambda: app.queue is not None and not app.training, 120,
                         "the run to finish")
    assert any(isinstance(m, RunBegan) for m in seen) and any(isinstance(m, StepMetrics) for m in seen)
    [record] = load_runs(tmp_path).records
    assert record.status == "completed" and record.timing["world_size"] == 2
