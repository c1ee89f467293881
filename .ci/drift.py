"""Try the newest versions pyproject.toml allows, on purpose (``.ci/run --latest``).

1. A fresh venv (``.venv-latest``) gets ``torch==<the lock's> -e '.[test]' --upgrade``: every
   other package resolves to the newest allowed version, as a new user's unlocked install would.
2. The versions that differ from ``locks/cpu.txt`` are listed, then the whole suite runs.
3. If it fails, each changed package is tried alone: a venv at the lock (``.venv-lock``) gets
   that one package at its new version, and only the failing tests run. The report says which
   newer version breaks which tests (or that none breaks them alone: then it is a combination).

Exit 0 when the suite passes with the newest versions (move the lock forward with ``.ci/lock``),
1 when it fails, 2 when an install fails. torch stays at the lock's version: its CPU wheel is
chosen by the exact pin, and a torch upgrade is a decision of its own.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "locks" / "cpu.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a lock or of ``pip freeze`` (comments, editables, local labels dropped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;+]+)(\+\S+)?", line)
        if m:
            out[canonical(m.group(1))] = m.group(2)
    return out


def changes(locked: dict[str, str], resolved: dict[str, str]) -> list[tuple[str, str | None, str | None]]:
    """(package, locked version, resolved version) for every package that differs, by name."""
    names = sorted(set(locked) | set(resolved))
    return [(n, locked.get(n), resolved.get(n)) for n in names if locked.get(n) != resolved.get(n)]


def failed_tests(junit_xml: str) -> list[str]:
    """Node ids of the failed or erroring test cases in a pytest JUnit XML report."""
    root = ET.fromstring(junit_xml)
    failed = []
    for case in root.iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            path = case.get("classname", "").replace(".", "/")
            file, _, cls = path.partition("/Test")  # pytest writes module path + class
            node = f"{file}.py::" + (f"Test{cls.replace('/', '::')}::" if cls else "") + case.get("name", "")
            failed.append(node)
    return failed


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kw)


def _venv(path: Path) -> Path:
    if not (path / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(path)], check=True)
    return path / "bin"


def _pytest(bindir: Path, report: Path, tests: list[str]) -> int:
    return _run([str(bindir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 f"--junitxml={report}", *tests]).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=".ci/run --latest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", default=[], help="run only these tests (node ids) in step 2")
    args = ap.parse_args(argv)
    locked = pins(LOCK.read_text())
    torch = f"torch=={locked['torch']}"

    latest = _venv(ROOT / ".venv-latest")
    if _run([str(latest / "pip"), "install", "-q", "--upgrade", torch, "-e", ".[test]"]).returncode:
        print("drift: the newest allowed versions do not install together (see pip's message above)")
        return 2
    resolved = pins(_run([str(latest / "pip"), "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout)
    diff = changes(locked, resolved)
    print("\nversions that differ from locks/cpu.txt:" if diff else "\nthe newest versions are the locked ones")
    for name, old, new in diff:
        print(f"  {name:28} {old or '-':>14} -> {new or '-'}")

    report = ROOT / ".venv-latest" / "junit.xml"
    if _pytest(latest, report, args.only) == 0:
        print("\ndrift: the suite passes with the newest versions; `.ci/lock` moves the lock to them")
        return 0
    failing = failed_tests(report.read_text()) if report.exists() else []
    print(f"\ndrift: {len(failing)} test(s) fail with the newest versions:")
    for node in failing:
        print("  ", node)
    upgraded = [(n, old, new) for n, old, new in diff if new and n != "torch"]
    if not failing or not upgraded:
        return 1

    base = _venv(ROOT / ".venv-lock")
    if _run([str(base / "pip"), "install", "-q", "-c", str(LOCK), torch, "-e", ".[test]"]).returncode:
        return 2
    verdicts = []
    for name, old, new in upgraded:
        pinned = f"{name}=={new}"
        ok = _run([str(base / "pip"), "install", "-q", "--no-deps", pinned]).returncode == 0
        if not ok:
            verdicts.append((pinned, "could not be installed alone"))
            continue
        one = ROOT / ".venv-lock" / f"junit-{name}.xml"
        code = _pytest(base, one, failing)
        broken = failed_tests(one.read_text()) if one.exists() else []
        verdicts.append((pinned, f"breaks {len(broken)}: " + ", ".join(broken) if code else "breaks nothing alone"))
        if old:
            _run([str(base / "pip"), "install", "-q", "--no-deps", f"{name}=={old}"], check=True)
    print("\nwhich newer version breaks what (each tried alone on top of the lock):")
    for pinned, verdict in verdicts:
        print(f"  {pinned:36} {verdict}")
    if not any(v.startswith("breaks") and not v.startswith("breaks nothing") for _, v in verdicts):
        print("  no single upgrade breaks them: a combination does (install two of the above together)")
    return 1


if __name__ == "__main__":
    sys.exit(main())
