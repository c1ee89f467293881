"""Reliability: safety (issue 6). A model folder's own Python code runs only with
--trust-remote-code; weights load as safetensors only unless --allow-pickle; run ids and export
paths cannot write outside their folder; nothing read from disk is unpickled or evaluated.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ftbench.cli import build_parser, main
from ftbench.engine.runner import run
from ftbench.presets import Overrides, expand, parse_preset_text
from ftbench.results.store import StoreError, check_run_id, find_run, save_record
from ftbench.results.record import RecordError, RunRecord
from ftbench.spec import DataSpec, MethodSpec, RunSpec, TrainParams

CATEGORY = "safety"
PACKAGE = Path(__file__).resolve().parent.parent / "ftbench"
FIXTURE_RUNS = Path(__file__).parent / "fixtures" / "runs"


pytestmark = pytest.mark.usefixtures("quick_cpu_runs")  # tests/reliability_tally.py


def spec(model: str, **flags: bool) -> RunSpec:
    return RunSpec(preset="safety", model=model, task="classification",
                   data=DataSpec(name="synthetic-sentiment", train_size=32, eval_size=16),
                   train=TrainParams(epochs=None, max_steps=2, batch_size=16, max_length=24,
                                     learning_rate=1e-3, logging_steps=1),
                   method=MethodSpec(name="head-only"), seed=1, **flags)


def tiny_copy(dest: Path, weights: bool = True) -> Path:
    from ftbench.models import tiny_model_folder

    src = tiny_model_folder("tiny-bert")
    dest.mkdir()
    for path in src.iterdir():
        if weights or path.suffix != ".safetensors":
            shutil.copy(path, dest / path.name)
    return dest


# --- trust_remote_code ----------------------------------------------------------------------

REMOTE_CODE = '''
from pathlib import Path
Path({marker!r}).write_text("the model folder's code ran")
from transformers import BertConfig, BertForSequenceClassification


class EvilConfig(BertConfig):
    pass


class EvilModel(BertForSequenceClassification):
    config_class = EvilConfig
'''


def make_remote_code_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           model_type: str = "bert") -> tuple[Path, Path]:
    """A local model whose config.json asks transformers to import the folder's Python file,
    which leaves a marker when it runs."""
    import transformers.dynamic_module_utils as dyn

    monkeypatch.setattr(dyn, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # keep the user's cache clean
    folder = tiny_copy(tmp_path / f"evil-{model_type}")
    marker = tmp_path / "code-ran.txt"
    (folder / "evil.py").write_text(REMOTE_CODE.format(marker=str(marker)))
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig",
                          "AutoModelForSequenceClassification": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder, marker


@pytest.fixture
def remote_code_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    return make_remote_code_model(tmp_path, monkeypatch)


@pytest.mark.parametrize("model_type", ["bert", "evil-bert"], ids=["known-type", "custom-type"])
def test_remote_code_does_not_run_by_default(tally: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             model_type: str) -> None:
    """A known architecture loads with transformers' own code, ignoring the folder's; a custom
    one fails with one line that names the flag. The folder's code never runs."""
    folder, marker = make_remote_code_model(tmp_path, monkeypatch, model_type)
    with tally.case(CATEGORY):
        finished = run(spec(str(folder)), runs_dir=tmp_path / "runs")
    record = finished.record
    assert not marker.exists()
    if model_type == "bert":
        assert record.status == "completed", record.error
    else:
        assert record.status == "failed" and "trust_remote_code" in record.error
        assert "\n" not in record.error
    assert record.spec["trust_remote_code"] is False
    assert record.model_info["trust_remote_code"] is False


def test_remote_code_runs_only_with_the_flag_and_is_recorded(tally: Any, tmp_path: Path,
                                                             remote_code_model: tuple[Path, Path]) -> None:
    folder, marker = remote_code_model
    preset = parse_preset_text(PRESET.replace("MODEL", str(folder)))
    [flagged] = expand(preset, Overrides(trust_remote_code=True))
    with tally.case(CATEGORY):
        finished = run(flagged, runs_dir=tmp_path / "runs")
    assert marker.exists()
    record = finished.record
    assert record.spec["trust_remote_code"] is True and record.model_info["trust_remote_code"] is True


PRESET = """
title = "t"
description = "d"
reproduces = "r"
model = "MODEL"
task = "classification"
[data]
name = "synthetic-sentiment"
train_size = 32
eval_size = 16
[train]
max_steps = 2
batch_size = 16
max_length = 24
[[methods]]
name = "head-only"
"""


def test_cli_flags_are_off_by_default_and_reach_the_spec() -> None:
    parser = build_parser()
    off = parser.parse_args(["run", "--preset", "quickstart"])
    assert off.trust_remote_code is False and off.allow_pickle is False
    on = parser.parse_args(["run", "--preset", "quickstart", "--trust-remote-code", "--allow-pickle"])
    assert on.trust_remote_code and on.allow_pickle
    [default] = expand(parse_preset_text(PRESET.replace("MODEL", "tiny-bert")))
    assert default.trust_remote_code is False and default.allow_pickle is False
    assert RunSpec.from_dict(default.to_dict()) == default


# --- pickle weights -------------------------------------------------------------------------

class Payload:
    """Unpickling this writes a file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "unpickled"))


@pytest.mark.parametrize("allow", [False, True], ids=["default", "allow-pickle"])
def test_hostile_pickle_weights_never_unpickled(tally: Any, tmp_path: Path, allow: bool) -> None:
    folder = tiny_copy(tmp_path / "pickled", weights=False)
    marker = tmp_path / "unpickled.txt"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"bert.weight": Payload(marker)}))
    with tally.case(CATEGORY):
        finished = run(spec(str(folder), allow_pickle=allow), runs_dir=tmp_path / "runs")
    record = finished.record
    assert not marker.exists()
    assert record.status == "failed" and "\n" not in record.error
    if not allow:
        assert "--allow-pickle" in record.error and "pytorch_model.bin" in record.error
    assert record.model_info["allow_pickle"] is allow


def test_plain_pickle_weights_load_with_the_flag(tally: Any, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from ftbench.models import tiny_model_folder

    folder = tiny_copy(tmp_path / "pickled", weights=False)
    torch.save(load_file(tiny_model_folder("tiny-bert") / "model.safetensors"), folder / "pytorch_model.bin")
    with tally.case(CATEGORY):
        finished = run(spec(str(folder), allow_pickle=True), runs_dir=tmp_path / "runs")
    record = finished.record
    assert record.status == "completed", record.error
    assert record.spec["allow_pickle"] is True and record.model_info["allow_pickle"] is True


# --- run ids cannot leave their folder ------------------------------------------------------

RUN_IDS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["..", "../x", "a/../../b", "/etc/passwd", "x/y", "x\\y", "C:evil", ".hidden",
                     "a..b", "~root", "x\x00y", "x" * 129, "", " ", "a\nb", "run*", "run?", "[ab]"]),
    st.text(alphabet="./\\-_~aZ09", min_size=1, max_size=12),
)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(run_id=RUN_IDS)
def test_run_ids_stay_inside_the_runs_folder(tally: Any, tmp_path_factory: Any, run_id: str) -> None:
    root = tmp_path_factory.mktemp("ids")
    folder = root / "runs"
    record = RunRecord(run_id=run_id, preset="p", method="full", status="completed",
                       created_at="2026-01-01T00:00:00+00:00", spec={})
    with tally.case(CATEGORY, expected=(StoreError, RecordError)):
        try:
            check_run_id(run_id)
        except StoreError:
            with pytest.raises(StoreError):
                save_record(record, folder)
            with pytest.raises(StoreError):
                find_run(run_id, folder)
            assert not folder.exists() or not any(folder.iterdir())
        else:
            path = save_record(record, folder)
            assert path.parent == folder and path.name == f"{run_id}.json"
            assert path.resolve().parent == folder.resolve()
            assert find_run(run_id, folder).run_id == run_id
    outside = [p for p in root.rglob("*") if folder not in (p, *p.parents)]
    assert outside == []


# --- export paths ---------------------------------------------------------------------------

def tree(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else None)
            for p in sorted(root.rglob("*"))}


def export(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.fixture
def hostile_runs(tmp_path: Path) -> Path:
    """Runs whose names look like paths: nothing they contain may decide where files go."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for i, path in enumerate(sorted(FIXTURE_RUNS.glob("*.json"))[:4]):
        doc = json.loads(path.read_text())
        doc["preset"] = ["../../escaped", "/tmp/abs", "..", "out/../../x"][i]
        doc["spec"]["model"] = "../../model"
        (runs / path.name).write_text(json.dumps(doc))
    return runs


@pytest.mark.parametrize("case", ["file", "symlink-out", "directory", "trailing-slash",
                                  "missing-folder", "charts-directory", "dev-null-folder"])
def test_export_writes_only_the_file_named(tally: Any, tmp_path: Path, hostile_runs: Path,
                                           case: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    base = ["--runs-dir", str(hostile_runs)]
    if case == "file":
        argv, ok, target = ["export", *base, "-f", "csv", "-o", str(out / "r.csv")], True, out / "r.csv"
    elif case == "symlink-out":
        (out / "link.md").symlink_to(outside)
        argv, ok, target = ["export", *base, "-o", str(out / "link.md")], True, out / "link.md"
    elif case == "directory":
        argv, ok, target = ["export", *base, "-o", str(out)], False, None
    elif case == "trailing-slash":
        argv, ok, target = ["export", *base, "-o", str(out / "new") + "/"], False, None
    elif case == "missing-folder":
        argv, ok, target = ["export", *base, "-o", str(out / "no" / "such" / "r.md")], False, None
    elif case == "charts-directory":
        argv, ok, target = ["compare", *base, "--save-charts", str(out), "--width", "100"], False, None
    else:
        argv, ok, target = ["export", *base, "-o", "/dev/null/x.md"], False, None
    before = tree(tmp_path)
    with tally.case(CATEGORY):
        code, err = export(*argv)
    tally.check_output(CATEGORY, err)
    after = tree(tmp_path)
    assert outside.read_text() == "keep me"
    changed = {k for k in set(before) | set(after) if before.get(k, b"-") != after.get(k, b"-")}
    if ok:
        assert code == 0, err
        assert changed == {str(target.relative_to(tmp_path))}, changed
        assert target.is_file() and not target.is_symlink()
    else:
        assert code == 2 and err.startswith("ftbench: error: ") and len(err.strip().splitlines()) >= 1
        assert changed == set(), changed
        assert not (out / "no").exists()


# --- nothing read from disk is unpickled or evaluated -----------------------------------------

FORBIDDEN_CALLS = {
    ("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("marshal", "loads"),
    ("marshal", "load"), ("shelve", "open"), ("torch", "load"), ("joblib", "load"),
    ("yaml", "load"), ("yaml", "unsafe_load"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
    ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
}
FORBIDDEN_NAMES = {"eval", "exec", "__import__"}
FORBIDDEN_KEYWORDS = {("trust_remote_code", True), ("use_safetensors", False),
                      ("weights_only", False), ("allow_pickle", True)}


def test_no_pickle_eval_or_hard_coded_trust_in_the_package(tally: Any) -> None:
    tally.add(CATEGORY)
    found = []
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    for path in files:
        tree_ = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree_):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.append(node.module)
                for name in names:
                    if name.split(".")[0] in ("pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"):
                        found.append(f"{path.name}:{node.lineno}: import {name}")
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_NAMES:
                found.append(f"{path.name}:{node.lineno}: {func.id}()")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
                    and (func.value.id, func.attr) in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno}: {func.value.id}.{func.attr}()")
            for kw in node.keywords:
                if isinstance(kw.value, ast.Constant) and (kw.arg, kw.value.value) in FORBIDDEN_KEYWORDS:
                    found.append(f"{path.name}:{node.lineno}: {kw.arg}={kw.value.value}")
    assert found == []
