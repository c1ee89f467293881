"""The layers diagram in docs/design.md names only modules that exist, in the layers that the
import-linter contract in pyproject.toml enforces."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _diagram() -> str:
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    start = text.index("## Layers")
    section = text[start:text.index("\n## ", start + 1)]
    return section.split("```")[1]


def _rows() -> list[list[str]]:
    """The module paths of each layer row (a row continues on lines with no layer name)."""
    rows: list[list[str]] = []
    for line in _diagram().strip("\n").splitlines():
        paths = re.findall(r"ftbench/[\w/]+\.py", line)
        if line[:1].strip():
            rows.append([])
        rows[-1] += paths
    return rows


def _package(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:2])


def test_every_module_in_the_diagram_exists() -> None:
    paths = [p for row in _rows() for p in row]
    assert len(paths) >= 20
    assert [p for p in paths if not (ROOT / p).is_file()] == []


def test_the_diagram_rows_are_the_contract_layers() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    contract = [set(re.split(r"\s*[|:]\s*", layer)) for layer in layers]
    diagram = [{_package(p) for p in row} for row in _rows()]
    assert diagram == contract


def test_the_names_it_gives_exist() -> None:
    from ftbench.engine.runner import run, save_failed
    from ftbench.engine.trainargs import training_args
    from ftbench.rules import Rule
    from ftbench.tasks.info import primary_metrics
    from ftbench.terms import json_safe, peak_memory
    from ftbench.text import one_line, printable

    diagram = _diagram()
    for obj in (run, save_failed, training_args, Rule, json_safe, peak_memory, one_line, printable,
                primary_metrics):
        assert re.search(rf"\b{obj.__name__}\b", diagram), obj.__name__
