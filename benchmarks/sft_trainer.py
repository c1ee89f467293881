"""The hand-written SFT baseline for benchmarks/sft_overhead.py: transformers Trainer + peft.

It trains what `ftbench run --preset sft-quickstart --method lora --max-steps N` trains: the
same SmolLM2-135M folder, the same generated word problems (ftbench's generator is used only
to get the identical examples), the tokenizer's chat template, the loss on the response tokens
only, LoRA r=16 / alpha 32 / dropout 0.05 on every linear layer, bf16 autocast, AdamW at
1e-3 with a linear schedule, batch 8, seed 42. Tokenization, labels and padding are written
here with the usual transformers pieces (`apply_chat_template`, `DataCollatorForSeq2Seq`), not
taken from ftbench. It counts the real (non-padding) tokens each training step consumes and
prints one JSON line: train seconds, tokens, tokens/s.

    python benchmarks/sft_trainer.py --max-steps 40
    python benchmarks/sft_trainer.py --tiny --max-steps 3    # tiny-llama, plain template (CI)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

T0 = time.perf_counter()  # before the heavy imports: the script's start-up counts

import torch  # noqa: E402
from peft import LoraConfig, TaskType, get_peft_model  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainingArguments,
)

from ftbench.data.math_problems import Difficulty, generate  # noqa: E402
from ftbench.models import resolve_model  # noqa: E402


class CountingTrainer(Trainer):
    """Counts the real tokens of every batch it trains on (one device sum per step)."""

    tokens = 0

    def training_step(self, model, inputs, num_items_in_batch=None):  # type: ignore[no-untyped-def]
        self.tokens += int(inputs["attention_mask"].sum())
        return super().training_step(model, inputs, num_items_in_batch)


def encode(tokenizer, prompt: str, response: str, chat: bool) -> dict:  # type: ignore[no-untyped-def]
    user = [{"role": "user", "content": prompt}]
    if chat:
        head = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": response}],
                                             tokenize=False)
    else:
        head = f"Question: {prompt}\nAnswer: "
        full = head + response + tokenizer.eos_token
    prompt_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(head):], add_special_tokens=False)["input_ids"]
    ids = prompt_ids + answer_ids
    return {"input_ids": ids, "attention_mask": [1] * len(ids),
            "labels": [-100] * len(prompt_ids) + answer_ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--tiny", action="store_true", help="tiny-llama, plain template (CI)")
    args = parser.parse_args()

    folder = resolve_model("tiny-llama" if args.tiny else "smollm2-135m").path
    tokenizer = AutoTokenizer.from_pretrained(folder)
    train, _ = generate(1200 if not args.tiny else 32, 100 if not args.tiny else 6, 42,
                        Difficulty(1, 1 if args.tiny else 2, 40))
    rows = [encode(tokenizer, p.prompt, p.response, chat=not args.tiny) for p in train]
    rows = [r for r in rows if len(r["input_ids"]) <= (256 if args.tiny else 160)]

    torch.manual_seed(42)
    model = AutoModelForCausalLM.from_pretrained(folder)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.CAUSAL_LM, r=4 if args.tiny else 16,
                                             lora_alpha=32, lora_dropout=0.05,
                                             target_modules="all-linear"))
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4 if args.tiny else 8,
        max_steps=args.max_steps, learning_rate=1e-3, logging_steps=10, eval_strategy="no",
        save_strategy="no", report_to="none", seed=42, data_seed=42, use_cpu=True,
        bf16=not args.tiny, optim="adamw_torch", dataloader_num_workers=0, disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = CountingTrainer(model=model, args=targs, train_dataset=rows,
                              data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True,
                                                                   label_pad_token_id=-100))
    t = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t
    print(json.dumps({"train_s": round(train_s, 3), "tokens": trainer.tokens,
                      "tokens_per_s": round(trainer.tokens / train_s, 1),
                      "in_process_s": round(time.perf_counter() - T0, 3)}))


if __name__ == "__main__":
    main()
