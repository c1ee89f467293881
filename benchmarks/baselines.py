"""What ftbench is measured against in benchmarks/gpu.py: the same training without ftbench.

* `plain_trainer`: a hand-written transformers `Trainer` + peft script, as a user would write
  it: `DataCollatorWithPadding`, the Trainer's own data loader settings, fused AdamW on a GPU,
  bf16 where supported. Its only addition is a callback that notes the time at logging steps
  (where the Trainer syncs for the loss), so its steady state is measured by the same rule as
  ftbench's (`ftbench.engine.callbacks.steady_window`).
* `plain_loop`: a plain PyTorch loop over pre-tokenized batches already on the device, padded
  to ``max_length`` (static shapes), bf16 autocast, fused AdamW, optionally `torch.compile`d:
  the practical ceiling for this model, batch and precision.

Both use ftbench only to locate the same model folder and to load the same examples; the model,
the method (peft) and the loop are written out here. `method_model` builds the model for a
method the way a user would with peft.
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

LORA = dict(r=8, lora_alpha=16, lora_dropout=0.1)          # ftbench's lora / qlora defaults
LORA_TARGETS = {"bert": ["query", "value"], "roberta": ["query", "value"],
                "distilbert": ["q_lin", "v_lin"]}


def method_model(folder: str, method: str, num_labels: int, precision: str) -> Any:
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    kwargs: dict[str, Any] = {}
    if method == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
            llm_int8_skip_modules=["classifier", "bert.pooler", "roberta.pooler"])
    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=num_labels, **kwargs)
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if method in ("lora", "qlora"):
        model = get_peft_model(model, LoraConfig(
            task_type=TaskType.SEQ_CLS, target_modules=LORA_TARGETS[model.config.model_type],
            modules_to_save=["classifier"], **LORA))
    elif method != "full":
        raise ValueError(f"baselines know full, lora and qlora, not {method!r}")
    return model


def _encode(tokenizer: Any, texts: list[str], labels: list[int], max_length: int) -> list[dict]:
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    return [{"input_ids": i, "attention_mask": m, "labels": y}
            for i, m, y in zip(enc["input_ids"], enc["attention_mask"], labels)]


def plain_trainer(folder: str, method: str, texts: list[str], labels: list[int], *, batch: int,
                  steps: int, lr: float, max_length: int, precision: str, logging_steps: int,
                  warmup: int) -> dict[str, Any]:
    import torch
    from transformers import (AutoTokenizer, DataCollatorWithPadding, Trainer, TrainerCallback,
                              TrainingArguments)

    from ftbench.engine.steady import steady_window

    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = _encode(tokenizer, texts, labels, max_length)
    model = method_model(folder, method, 2, precision)
    points: list[dict[str, Any]] = []

    class Clock(TrainerCallback):
        t0 = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            Clock.t0 = time.perf_counter()

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                points.append({"step": state.global_step, "t": time.perf_counter() - Clock.t0,
                               "samples": state.global_step * batch, "tokens": None})

    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=lr, logging_steps=logging_steps, eval_strategy="no", save_strategy="no",
        report_to="none", seed=42, data_seed=42, bf16=precision == "bf16", use_cpu=not cuda,
        optim="adamw_torch_fused" if cuda else "adamw_torch", disable_tqdm=True,
        remove_unused_columns=False)
    trainer = Trainer(model=model, args=args, train_dataset=rows,
                      data_collator=DataCollatorWithPadding(tokenizer), callbacks=[Clock()])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    steady = steady_window(points, warmup)
    return {"train_s": round(train_s, 3),
            "steady_samples_per_s": steady["steady_samples_per_s"] if steady else None,
            "torch_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}


def plain_loop(folder: str, method: str, texts: list[str], labels: list[int], *, batch: int,
               steps: int, lr: float, max_length: int, precision: str, warmup: int,
               compile: bool) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length",
                    return_tensors="pt")
    y = torch.tensor(labels)
    n = len(texts)
    batches = []
    for i in range(min(math.ceil(n / batch), 8)):  # a few distinct batches, cycled
        idx = torch.arange(i * batch, (i + 1) * batch) % n
        batches.append({"input_ids": enc["input_ids"][idx].to(device),
                        "attention_mask": enc["attention_mask"][idx].to(device),
                        "labels": y[idx].to(device)})
    model = method_model(folder, method, 2, precision).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, fused=cuda)
    forward = torch.compile(model) if compile else model
    dtype = torch.bfloat16 if precision == "bf16" else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    t_start = time.perf_counter()
    t_first = t_warm = None
    for step in range(1, steps + 1):
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            loss = forward(**batches[step % len(batches)]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step == 1:
            sync()
            t_first = time.perf_counter() - t_start
        if step == warmup:
            sync()
            t_warm = time.perf_counter()
    sync()
    t_end = time.perf_counter()
    rate = (steps - warmup) * batch / (t_end - t_warm) if t_warm and steps > warmup else None
    return {"train_s": round(t_end - t_start, 3), "first_step_s": round(t_first or 0.0, 3),
            "steady_samples_per_s": round(rate, 2) if rate else None,
            "torch_peak_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None}
