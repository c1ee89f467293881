"""Every import inside a function says why it is there (issue 22).

ftbench imports at the top of a module unless start-up time needs otherwise (torch,
transformers and friends stay out of ``--help`` and the TUI's first paint) or an import cycle
forces it. Such an import carries a comment, on its line or on the line above its group of
consecutive imports, saying which. The module-level ``if TYPE_CHECKING:`` block is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ftbench"


def _groups(body: list[ast.stmt]) -> list[list[ast.stmt]]:
    """Runs of consecutive import statements in one statement list."""
    groups: list[list[ast.stmt]] = []
    current: list[ast.stmt] = []
    for stmt in body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            current.append(stmt)
            continue
        if current:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _bodies(node: ast.AST) -> list[list[ast.stmt]]:
    """Every statement list below ``node``."""
    out: list[list[ast.stmt]] = []
    for child in ast.walk(node):
        for field in ("body", "orelse", "finalbody"):
            value = getattr(child, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                out.append(value)
    return out


def _has_comment(lines: list[str], group: list[ast.stmt]) -> bool:
    first = group[0].lineno
    above = lines[first - 2].strip() if first > 1 else ""
    if above.startswith("#"):
        return True
    return any("#" in lines[n - 1] for stmt in group for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))


def uncommented_local_imports(source: str, name: str = "<source>") -> list[str]:
    """``file:line`` of each group of function-local imports without a comment saying why."""
    lines = source.splitlines()
    found: list[str] = []
    seen: set[int] = set()
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for body in _bodies(fn):
            for group in _groups(body):
                if group[0].lineno in seen:
                    continue
                seen.add(group[0].lineno)
                if not _has_comment(lines, group):
                    found.append(f"{name}:{group[0].lineno}")
    return found


def test_every_function_local_import_says_why() -> None:
    found: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += uncommented_local_imports(path.read_text(), str(path.relative_to(PACKAGE.parent)))
    assert not found, "function-local imports without a comment saying why:\n" + "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    import torch\n    return torch\n", ["<source>:2"]),
    ("def f():\n    import torch  # heavy: not at start-up\n    return torch\n", []),
    ("def f():\n    # heavy: not at start-up\n    import torch\n    import numpy\n    return torch\n", []),
    ("def f():\n    x = 1\n    if x:\n        from a import b\n    return b\n", ["<source>:4"]),
    ("import os\n\ndef f():\n    return os\n", []),
    ("class C:\n    def m(self):\n        from a import (b,\n                       c)\n"
     "        return b\n", ["<source>:3"]),
])
def test_the_checker_finds_what_it_should(source: str, expected: list[str]) -> None:
    assert uncommented_local_imports(source) == expected
