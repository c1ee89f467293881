"""The repository stands alone: nothing in it points at files outside it, the README stays
short enough to read in five minutes, and every relative link in the docs leads to a file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_MAX_LINES = 200

# Files that lived beside the checkout while ftbench was built (their content is in docs/ now).
# Written as patterns so this file does not match itself.
OUTSIDE = re.compile(r"(?:\.\.|/work)/shared\b|\b(?:DESIGN|SEEDS|STYLE)\.md")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")  # [text](target) and ![alt](image)


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.decode().split("\0") if name]


def outside_references(paths: list[Path], root: Path = ROOT) -> list[str]:
    """'path:line: text' for every line that names a file outside the repository."""
    found = []
    for path in paths:
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()[:120]}")
    return found


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives a page's headings: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Relative links in a Markdown page to a file (or a heading of a Markdown file) that does
    not exist inside the repository."""
    root = root.resolve()
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    broken = []
    for link in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
            continue
        target, _, anchor = unquote(link).partition("#")
        resolved = (page.parent / target).resolve() if target else page.resolve()
        inside = resolved == root or root in resolved.parents
        if not inside or not resolved.exists() or (
                anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(f"{page.resolve().relative_to(root)}: {link}")
    return broken


def markdown_pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_nothing_refers_to_files_outside_the_repository() -> None:
    assert outside_references(tracked_files()) == []


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_relative_links_in_the_docs_lead_to_files() -> None:
    pages = markdown_pages()
    assert len(pages) >= 10
    assert [b for page in pages for b in broken_links(page)] == []



def test_the_checks_catch_what_they_are_for(tmp_path: Path) -> None:
    """The same functions, on a made-up repository with one of each mistake."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Index\n\n## Some section: `x`\n")
    (docs / "pic.svg").write_text("<svg/>")
    notes = tmp_path / "notes.txt"
    notes.write_text("fine\nsee ../" + "shared/DESIGN" + ".md\nand SEEDS" + ".md too\n")
    assert outside_references([notes, docs / "index.md"], tmp_path) == [
        "notes.txt:2: see ../" + "shared/DESIGN" + ".md", "notes.txt:3: and SEEDS" + ".md too"]
    page = docs / "page.md"
    page.write_text(
        "[ok](index.md) [ok](index.md#some-section-x) [ok](#here) ![ok](pic.svg) "
        "[web](https://example.org/a.md)\n# Here\n"
        "[gone](nowhere.md) [up](../../outside.md) [bad anchor](index.md#nope) ![lost](a.svg)\n"
        "```\n[in code](ignored.md)\n```\n")
    assert broken_links(page, tmp_path) == [
        "docs/page.md: nowhere.md", "docs/page.md: ../../outside.md",
        "docs/page.md: index.md#nope", "docs/page.md: a.svg"]
