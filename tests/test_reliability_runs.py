"""Reliability: run files ftbench did not write (issue 6). Fuzzed and truncated JSON records,
wrong and future schema versions, binary junk, empty files, odd file types, hostile strings and
a folder of thousands of files. `runs`, `compare` and `export` must skip the bad files (one
``skipped`` line each), show the rest, exit 0 and never print a traceback.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftbench.cli import main
from ftbench.results.record import RecordError, parse_record
from ftbench.results.store import load_file, load_runs

CATEGORY = "run files"
FIXTURES = Path(__file__).parent / "fixtures" / "runs"
GOOD = sorted(FIXTURES.glob("*.json"))
GOOD_DOCS = [json.loads(p.read_text()) for p in GOOD]
KEEP = GOOD[:3]  # the good runs every messy folder also holds (full, seeds 0-2)


@pytest.fixture(autouse=True)
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "FTBENCH_RUNS_DIR"):
        monkeypatch.delenv(name, raising=False)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def every_view(tally: Any, folder: Path, good_ids: set[str], bad_names: set[str],
               charts: bool = False, export_dir: Path | None = None) -> None:
    """`runs`, `compare` and `export` over ``folder``: the good runs shown, the bad skipped."""
    d = str(folder)
    commands = [
        ("runs", "--runs-dir", d),
        ("runs", "--runs-dir", d, "--json"),
        ("compare", "--runs-dir", d, "--json"),
        ("compare", "--runs-dir", d, "--width", "120", *(() if charts else ("--no-charts",))),
        ("compare", "--runs-dir", d, "--per-run", "--no-charts", "--width", "100"),
        ("export", "--runs-dir", d, "-f", "csv"),
        ("export", "--runs-dir", d, "-f", "md"),
        ("export", "--runs-dir", d, "-f", "json"),
    ]
    for argv in commands:
        with tally.guard(CATEGORY):
            code, out, err = cli(*argv)
        tally.check_output(CATEGORY, out + err)
        assert code == 0, (argv, err[-2000:])
        skipped = [line for line in err.splitlines() if line.startswith("ftbench: skipped ")]
        for name in bad_names:
            assert any(name in line for line in skipped), (argv, name, err[-1000:])
        if "csv" not in argv:  # CSV is data, exported as is; what people read is escaped
            assert "\x1b[2J" not in out + err, argv
        if argv[-1] == "--json" and argv[0] == "runs":
            shown = {r["run_id"] for r in json.loads(out)}
            assert good_ids <= shown, (good_ids - shown)
        if argv[0] == "export" and argv[-1] == "json":
            shown = {r["run_id"] for r in json.loads(out)}
            assert good_ids <= shown
        if argv[0] == "export" and argv[-1] == "csv":
            assert all(run_id in out for run_id in good_ids)
    if export_dir is not None:
        target = export_dir / "report.md"
        code, _, err = cli("export", "--runs-dir", d, "-f", "md", "-o", str(target))
        assert code == 0 and target.is_file(), err


def messy_folder(root: Path) -> Path:
    folder = root / "runs"
    folder.mkdir()
    for path in KEEP:
        shutil.copy(path, folder / path.name)
    return folder


GOOD_IDS = {p.stem for p in KEEP}


# --- fixed cases: each file is one case ---------------------------------------------------

def _doc(**changes: Any) -> str:
    doc = copy.deepcopy(GOOD_DOCS[3])
    for key, value in changes.items():
        if value is KeyError:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc, ensure_ascii=False)


BAD_FILES: dict[str, str | bytes] = {
    "empty.json": b"",
    "blank.json": b"  \n\t \n",
    "null.json": b"null",
    "list.json": b"[1, 2, 3]",
    "string.json": b'"a run"',
    "number.json": b"42",
    "truncated.json": GOOD[3].read_bytes()[:200],
    "half.json": GOOD[3].read_bytes()[: len(GOOD[3].read_bytes()) // 2],
    "binary.json": bytes(random.Random(6).randrange(256) for _ in range(512)),
    "latin1.json": _doc(preset="caf\xe9").encode("latin-1"),
    "utf16.json": _doc().encode("utf-16"),
    "bom.json": b"\xef\xbb\xbf" + _doc().encode(),
    "nan-series.json": _doc(timing={"train_s": float("inf")}).encode(),
    "deep.json": b"[" * 200_000 + b"]" * 200_000,
    "future-3.json": _doc(schema_version=3).encode(),
    "future-999.json": _doc(schema_version=999).encode(),
    "version-0.json": _doc(schema_version=0).encode(),
    "version-neg.json": _doc(schema_version=-1).encode(),
    "version-str.json": _doc(schema_version="1").encode(),
    "version-float.json": _doc(schema_version=1.0).encode(),
    "version-bool.json": _doc(schema_version=True).encode(),
    "version-null.json": _doc(schema_version=None).encode(),
    "version-missing.json": _doc(schema_version=KeyError).encode(),
    "status-bogus.json": _doc(status="exploded").encode(),
    "status-list.json": _doc(status=["completed"]).encode(),
    "no-spec.json": _doc(spec=KeyError).encode(),
    "spec-list.json": _doc(spec=[]).encode(),
    "metrics-list.json": _doc(metrics=[0.9]).encode(),
    "timing-str.json": _doc(timing={"train_s": "fast"}).encode(),
    "params-bool.json": _doc(params={"trainable": True}).encode(),
    "memory-dict.json": _doc(memory={"process_peak_rss_mb": {"mb": 1}}).encode(),
    "series-str.json": _doc(series={"train": "loss"}).encode(),
    "series-ints.json": _doc(series={"train": [1, 2]}).encode(),
    "runid-traversal.json": _doc(run_id="../../etc/passwd").encode(),
    "runid-empty.json": _doc(run_id="").encode(),
    "runid-markup.json": _doc(run_id="[/]").encode(),
    "runid-escape.json": _doc(run_id="\x1b[2J").encode(),
    "error-int.json": _doc(error=3).encode(),
    "references-dict.json": _doc(references={"a": 1}).encode(),
}


def test_bad_files_are_skipped_and_the_rest_shown(tally: Any, tmp_path: Path) -> None:
    folder = messy_folder(tmp_path)
    for name, content in BAD_FILES.items():
        (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    # odd kinds of file where a run file should be
    (folder / "folder.json").mkdir()
    os.mkfifo(folder / "fifo.json")  # reading it would block forever
    (folder / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (folder / "devzero.json").symlink_to("/dev/zero")
    with open(folder / "sparse-huge.json", "wb") as fh:  # larger than any record, never read
        fh.truncate(65 * 1024 * 1024)
    bad = set(BAD_FILES) | {"folder.json", "fifo.json", "dangling.json", "devzero.json",
                            "sparse-huge.json"}
    tally.add(CATEGORY, len(bad))
    started = time.monotonic()
    loaded = load_runs(folder)
    assert time.monotonic() - started < 10
    assert {r.run_id for r in loaded.records} == GOOD_IDS
    problems = {p.name: why for p, why in loaded.problems}
    assert set(problems) == bad
    for why in problems.values():
        assert "\n" not in why and why
    assert "newer than this ftbench" in problems["future-999.json"]
    assert problems["empty.json"] == "empty file"
    assert problems["fifo.json"] == "not a regular file"
    assert "not a valid run id" in problems["runid-traversal.json"]
    every_view(tally, folder, GOOD_IDS, bad, charts=True)
    # nothing was rewritten or removed
    assert (folder / "empty.json").read_bytes() == b""
    assert (folder / "future-999.json").read_bytes() == BAD_FILES["future-999.json"]


# --- hostile but valid strings are shown, escaped ------------------------------------------

HOSTILE = ["[/]", "[bold red]x[/bold red]", "\x1b[2Jcleared", "a\nb", "tab\tx", "\u202eevil",
           "🙂 émoji", "x" * 5000, "", "../../x", "=cmd|' /C calc'!A0", "|pipe|md|"]


def test_hostile_strings_in_records(tally: Any, tmp_path: Path) -> None:
    """Markup, escapes, bidi overrides, huge and empty strings. In names that reports print as
    labels, control characters make the file invalid (skipped, with the reason); anywhere else
    the record is shown, and nothing in the output can restyle or drive the terminal."""
    folder = messy_folder(tmp_path)
    ids, skipped = set(GOOD_IDS), set()
    for i, text in enumerate(HOSTILE):
        for where in ("names", "free text"):
            doc = copy.deepcopy(GOOD_DOCS[i % len(GOOD_DOCS)])
            doc["run_id"] = f"20270101T000000-hostile-{i:02d}-{where[0]}"
            if where == "names":
                doc["preset"] = doc["method"] = text or "x"
                doc["spec"]["model"] = text
                doc["spec"]["data"]["name"] = text
            else:
                doc["error"] = text
                doc["metrics"]["note"] = text
                doc["environment"]["cpu"] = text
                doc["data_info"]["notes"] = [text]
                doc["references"] = [{"method": doc["method"], "metrics": {"accuracy": 0.5},
                                      "note": text}]
            name = f"{doc['run_id']}.json"
            (folder / name).write_text(json.dumps(doc))
            if where == "names" and not text.isprintable():
                skipped.add(name)
            else:
                ids.add(doc["run_id"])
    tally.add(CATEGORY, 2 * len(HOSTILE))
    loaded = load_runs(folder)
    assert {r.run_id for r in loaded.records} == ids
    assert {p.name for p, _ in loaded.problems} == skipped
    every_view(tally, folder, ids, skipped, charts=True, export_dir=tmp_path)


# --- property-based: mutated records ------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(paths_of(value, prefix + (key,)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(paths_of(value, prefix + (i,)))
    return out


def mutate(data: Any, doc: dict[str, Any]) -> bytes:
    kind = data.draw(st.sampled_from(["replace", "delete", "add", "truncate", "flip", "version"]),
                     label="kind")
    if kind in ("truncate", "flip"):
        raw = bytearray(json.dumps(doc, indent=1).encode())
        if kind == "truncate":
            return bytes(raw[:data.draw(st.integers(0, len(raw) - 1), label="cut")])
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        return bytes(raw)
    doc = copy.deepcopy(doc)
    if kind == "version":
        doc["schema_version"] = data.draw(JSON_VALUES, label="version")
        return json.dumps(doc).encode()
    path = data.draw(st.sampled_from(paths_of(doc)), label="path")
    parent: Any = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if kind == "replace":
        parent[last] = data.draw(JSON_VALUES, label="value")
    elif kind == "delete":
        if isinstance(parent, dict):
            del parent[last]
        else:
            parent.pop(last)
    else:
        target = parent[last] if isinstance(parent[last], (dict, list)) else parent
        if isinstance(target, dict):
            target[data.draw(st.text(max_size=8), label="new key")] = data.draw(JSON_VALUES)
        else:
            target.append(data.draw(JSON_VALUES, label="new item"))
    return json.dumps(doc).encode()  # NaN and Infinity written as the bare tokens Python allows


@settings(max_examples=15, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_mutated_records_never_break_the_reports(tally: Any, data: Any) -> None:
    """Six mutated copies of real records per example: each is loaded or skipped, and every
    view of the folder works either way."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = messy_folder(Path(tmp))
        names = []
        for i in range(6):
            doc = GOOD_DOCS[data.draw(st.integers(0, len(GOOD_DOCS) - 1), label="base")]
            raw = mutate(data, doc)
            name = f"mutant-{i}.json"
            (folder / name).write_bytes(raw)
            names.append(name)
            with tally.case(CATEGORY, expected=(RecordError,)):
                try:
                    record = load_file(folder / name)
                except RecordError as exc:
                    assert "\n" not in str(exc)
                else:  # accepted: it must be a record that saves and loads back the same
                    assert parse_record(json.loads(json.dumps(record.to_dict()))).to_dict() == \
                        record.to_dict() or _has_nan(record.to_dict())
        loaded = load_runs(folder)
        skipped = {p.name for p, _ in loaded.problems}
        assert GOOD_IDS <= {r.run_id for r in loaded.records}
        every_view(tally, folder, GOOD_IDS, skipped, charts=data.draw(st.booleans(), label="charts"))


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return value != value
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


# --- a folder with thousands of files -------------------------------------------------------

def test_thousands_of_files(tally: Any, tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    rng = random.Random(7)
    good_ids = set()
    for i in range(1500):
        doc = copy.deepcopy(GOOD_DOCS[i % len(GOOD_DOCS)])
        doc["run_id"] = f"{doc['run_id']}-{i:05d}"
        (folder / f"{doc['run_id']}.json").write_text(json.dumps(doc))
        good_ids.add(doc["run_id"])
    bad = set()
    kinds = [b"", b"{", b"\x00" * 32, json.dumps({"schema_version": 7}).encode(),
             GOOD[0].read_bytes()[:300]]
    for i in range(1500):
        name = f"bad-{i:05d}.json"
        (folder / name).write_bytes(kinds[i % len(kinds)] if i % 7 else bytes(rng.randrange(256) for _ in range(64)))
        bad.add(name)
    (folder / "notes.txt").write_text("not a run file")  # other files are ignored
    tally.add(CATEGORY, 1)  # one folder: the bad files in it are counted by the smaller tests
    started = time.monotonic()
    loaded = load_runs(folder)
    load_s = time.monotonic() - started
    assert {r.run_id for r in loaded.records} == good_ids
    assert {p.name for p, _ in loaded.problems} == bad
    assert load_s < 20, f"loading 3,000 files took {load_s:.1f}s"
    code, out, err = cli("runs", "--runs-dir", str(folder), "--json")
    assert code == 0 and len(json.loads(out)) == 1500
    assert sum(1 for line in err.splitlines() if line.startswith("ftbench: skipped ")) == 1500
    code, out, err = cli("export", "--runs-dir", str(folder), "-f", "csv", "--preset", "lora-qa")
    tally.check_output(CATEGORY, out + err)
    assert code == 0 and out.count("\n") == 1 + sum(1 for r in loaded.records if r.preset == "lora-qa")
    code, out, err = cli("compare", "--runs-dir", str(folder), "--latest", "--no-charts")
    tally.check_output(CATEGORY, out + err)
    assert code == 0
