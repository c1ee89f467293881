"""FLOP counting and MFU against hand computations on a tiny BERT config."""

from __future__ import annotations

import pytest

from ftbench.engine.flops import count_training_flops, peak_tflops
from ftbench.methods import apply_method
from ftbench.spec import MethodSpec

H, L, FF, LABELS, SEQ = 32, 2, 37, 2, 10.0


def tiny_bert():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=H, num_hidden_layers=L, num_attention_heads=4,
                        intermediate_size=FF, max_position_embeddings=64, num_labels=LABELS)
    return BertForSequenceClassification(config)


# Σ in·out per block: q, k, v, attention output (4·H²) + FFN up and down (2·H·FF)
BLOCK = 4 * H * H + 2 * H * FF
POOLER = H * H
HEAD = H * LABELS
LINEAR = L * BLOCK + POOLER + HEAD
FORWARD = 2 * LINEAR + 4 * L * SEQ * H


def test_full_fine_tuning_is_three_forwards() -> None:
    count = count_training_flops(apply_method(tiny_bert(), MethodSpec("full"), "classification"), SEQ)
    assert count.linear_params == LINEAR
    assert count.forward_per_token == pytest.approx(FORWARD)
    # forward + activation grads through every block + weight grads of every linear
    assert count.train_per_token == pytest.approx(FORWARD + FORWARD + 2 * LINEAR)
    assert count.total(1000) == pytest.approx(1000 * count.train_per_token)


def test_head_only_backpropagates_into_the_head_alone() -> None:
    count = count_training_flops(apply_method(tiny_bert(), MethodSpec("head-only"), "classification"), SEQ)
    assert count.backward_layers == 0
    assert count.train_per_token == pytest.approx(FORWARD + 2 * HEAD)


def test_last_layer_backpropagates_through_one_block() -> None:
    count = count_training_flops(apply_method(tiny_bert(), MethodSpec("last-layer"), "classification"), SEQ)
    assert count.backward_layers == 1
    trainable_linear = BLOCK + POOLER + HEAD
    assert count.train_per_token == pytest.approx(FORWARD + FORWARD / L + 2 * trainable_linear)


def test_lora_counts_its_matrices_and_full_activation_backward() -> None:
    r = 4
    model = apply_method(tiny_bert(), MethodSpec("lora", {"r": r, "alpha": 8}), "classification")
    count = count_training_flops(model, SEQ)
    lora = L * 2 * (H * r + r * H)          # A and B on query and value of each block
    assert count.linear_params == LINEAR + lora
    assert count.backward_layers == L
    forward = 2 * (LINEAR + lora) + 4 * L * SEQ * H
    assert count.train_per_token == pytest.approx(2 * forward + 2 * (lora + HEAD))


def test_peaks_known_unknown_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTBENCH_PEAK_TFLOPS", raising=False)
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bf16")[0] == 989.0
    assert peak_tflops("NVIDIA H100 PCIe", "bf16")[0] == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-40GB", "fp32")[0] == 156.0
    assert peak_tflops("Tesla T4", "bf16")[0] is None
    assert peak_tflops(None, "fp32")[0] is None
    assert "FTBENCH_PEAK_TFLOPS" in peak_tflops("Mystery GPU", "bf16")[1]
    monkeypatch.setenv("FTBENCH_PEAK_TFLOPS", "100")
    assert peak_tflops("Mystery GPU", "bf16") == (100.0, "FTBENCH_PEAK_TFLOPS")


def test_compare_shows_mfu_only_when_a_run_has_it() -> None:
    from dataclasses import replace
    from pathlib import Path

    from rich.console import Console

    from ftbench.report.groups import build_comparison
    from ftbench.report.tables import comparison_tables
    from ftbench.results.store import load_runs

    records = [r for r in load_runs(Path(__file__).parent / "fixtures" / "runs").records
               if r.preset == "quickstart"][:2]
    assert records

    def render(recs: list) -> str:
        console = Console(width=200, record=True, color_system=None)
        for table in comparison_tables(build_comparison(recs), width=200):
            console.print(table)
        return console.export_text()

    assert "MFU" not in render(records)
    gpu = [replace(r, timing=dict(r.timing, mfu=0.4213 + i / 100)) for i, r in enumerate(records)]
    text = render(gpu)
    assert "MFU" in text and "42.6%" in text  # mean of 42.13 % and 43.13 %
