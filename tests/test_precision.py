"""precision = "auto": bf16 autocast on a CPU with native bf16, fp32 elsewhere; the record says
which ran and why. The CPU probe is forced both ways, so these run on any CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ftbench.engine import precision
from ftbench.engine.precision import Choice, choose
from ftbench.errors import FtbenchError
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

CASES = [
    # (asked, device, gpu_bf16, cpu_bf16, expected precision, words in the reason)
    ("auto", "cpu", True, "AVX512-BF16", "bf16", "native bf16: AVX512-BF16"),
    ("auto", "cpu", True, "AMX-BF16", "bf16", "AMX-BF16"),
    ("auto", "cpu", True, None, "fp32", "no native bf16"),
    ("auto", "cuda", True, None, "bf16", "GPU supports bf16"),
    ("auto", "cuda", False, "AVX512-BF16", "fp16", "GPU has no bf16"),
    ("fp32", "cpu", True, "AVX512-BF16", "fp32", "as the preset asks"),
    ("bf16", "cpu", True, None, "bf16", "emulated"),
    ("bf16", "cpu", True, "AVX512-BF16", "bf16", "as the preset asks"),
    ("fp16", "cuda", True, None, "fp16", "as the preset asks"),
]


@pytest.mark.parametrize("asked, device, gpu_bf16, cpu_bf16, expected, words", CASES)
def test_the_rule(asked: str, device: str, gpu_bf16: bool, cpu_bf16: str | None, expected: str,
                  words: str) -> None:
    choice = choose(asked, device, gpu_bf16=gpu_bf16, cpu_bf16=cpu_bf16)
    assert choice.precision == expected and words in choice.reason, choice


def test_fp16_needs_a_gpu() -> None:
    with pytest.raises(FtbenchError, match="fp16 needs a CUDA GPU"):
        choose("fp16", "cpu", cpu_bf16="AVX512-BF16")


def test_the_probe_asks_torch() -> None:
    caps = torch.cpu.get_capabilities()
    feature = precision.cpu_bf16_feature(torch)
    native = bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    assert (feature is not None) == (native and torch.ops.mkldnn._is_mkldnn_bf16_supported())

    class NoProbe:  # a torch without get_capabilities claims nothing
        cpu = object()

    assert precision.cpu_bf16_feature(NoProbe()) is None


def test_the_plan_uses_the_same_rule() -> None:
    from ftbench.plan.device import DeviceInfo
    from ftbench.plan.estimate import resolve_precision

    assert resolve_precision("auto", DeviceInfo("cpu", "c", None, None, "t")) == "fp32"
    assert resolve_precision("auto", DeviceInfo("cpu", "c", None, None, "t", cpu_bf16="AMX-BF16")) == "bf16"
    assert resolve_precision("auto", DeviceInfo("cuda", "g", None, None, "t", bf16=False)) == "fp16"


class AutocastProbe(torch.nn.Module):
    """The real model, noting whether each forward ran under CPU bf16 autocast."""

    def __init__(self, inner: Any, seen: list[bool]) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.seen = seen

    def forward(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None,
                labels: Any = None) -> Any:
        self.seen.append(torch.is_autocast_enabled("cpu")
                         and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, labels=labels)


@pytest.mark.parametrize("feature", ["AVX512-BF16", None])
def test_a_run_records_the_precision_that_ran(feature: str | None, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from ftbench.engine.runner import run

    monkeypatch.setattr(precision, "cpu_bf16_feature", lambda torch=None: feature)
    spec = RunSpec(preset="p", model="tiny-bert", task="classification",
                   data=DataSpec(name="synthetic-sentiment", train_size=16, eval_size=8),
                   train=TrainParams(epochs=None, max_steps=2, batch_size=8, max_length=32,
                                     logging_steps=1, precision="auto"),
                   method=MethodSpec(name="full"), seed=1)
    seen: list[bool] = []
    record = run(spec, runs_dir=tmp_path, wrap_model=lambda m: AutocastProbe(m, seen)).record
    assert record.status == "completed", record.error
    expected = "bf16" if feature else "fp32"
    assert record.environment["precision"] == expected
    assert record.environment["precision_reason"] == Choice(
        expected, choose("auto", "cpu", cpu_bf16=feature).reason).reason
    assert seen and all(s is bool(feature) for s in seen)  # training and evaluation alike
    assert record.spec["train"]["precision"] == "auto"      # what was asked stays in the spec
