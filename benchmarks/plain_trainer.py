"""The hand-written baseline for benchmarks/overhead.py: transformers Trainer + peft, no ftbench.

It trains exactly what `ftbench run --preset quickstart --method M --max-steps N` trains: the
same MiniLM folder, the same Rotten Tomatoes subset (ftbench's loader is used only to get the
identical examples; it reads a CSV and draws the split), the same tokenizer settings, optimizer,
schedule, batch size, seed and LoRA configuration. It uses nothing else from ftbench: no
callback, no telemetry thread, no run record. Prints one JSON line with its timings.

    python benchmarks/plain_trainer.py --method lora --max-steps 20 [--precision bf16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

T0 = time.perf_counter()

import torch  # noqa: E402
from peft import LoraConfig, TaskType, get_peft_model  # noqa: E402
from transformers import (AutoModelForSequenceClassification, AutoTokenizer,  # noqa: E402
                          DataCollatorWithPadding, Trainer, TrainingArguments)

from ftbench.bundles import minilm_folder  # noqa: E402  (locates the files, nothing more)
from ftbench.data import load_classification  # noqa: E402
from ftbench.models import tiny_model_folder  # noqa: E402
from ftbench.spec import DataSpec  # noqa: E402


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def encode(tokenizer, texts, labels, max_length):  # type: ignore[no-untyped-def]
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)
    return ListDataset([{"input_ids": ids, "attention_mask": mask, "labels": label}
                        for ids, mask, label in zip(enc["input_ids"], enc["attention_mask"], labels)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=["full", "lora"], default="lora")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: the Trainer's bf16 autocast on the CPU (bf16=True, use_cpu=True)")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny-bert on synthetic reviews (what `overhead.py --tiny` compares; CI)")
    args = parser.parse_args()
    lr = args.lr or {"full": 1e-4, "lora": 5e-3}[args.method]

    if args.tiny:
        folder = str(tiny_model_folder("tiny-bert"))
        data = load_classification(DataSpec(name="synthetic-sentiment", train_size=64, eval_size=16),
                                   seed=42, offline=True)
    else:
        folder = str(minilm_folder())
        data = load_classification(DataSpec(name="rotten_tomatoes", train_size=1600, eval_size=400,
                                            source="bundled"), seed=42, offline=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    train = encode(tokenizer, data.train_texts, data.train_labels, 64)
    evald = encode(tokenizer, data.eval_texts, data.eval_labels, 64)

    torch.manual_seed(42)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2)
    if args.method == "lora":
        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16,
                                                 lora_dropout=0.1, target_modules=["query", "value"]))
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=32, per_device_eval_batch_size=64,
        max_steps=args.max_steps, learning_rate=lr, logging_steps=5, eval_strategy="no",
        save_strategy="no", report_to="none", seed=42, data_seed=42, use_cpu=True,
        optim="adamw_torch", dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False,
        bf16=args.precision == "bf16",
    )
    trainer = Trainer(model=model, args=targs, train_dataset=train, eval_dataset=evald,
                      data_collator=DataCollatorWithPadding(tokenizer))
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    metrics = trainer.evaluate()
    print(json.dumps({"train_s": round(train_s, 3), "eval_loss": metrics["eval_loss"],
                      "precision": args.precision,
                      "in_process_s": round(time.perf_counter() - T0, 3)}))


if __name__ == "__main__":
    main()
