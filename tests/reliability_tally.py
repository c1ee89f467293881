"""The reliability suite's own tally (issue 6): cases tried per category, and what went wrong.

Every bad input or injected fault a reliability test tries is counted through the session
fixture ``tally``. A case that ends in an unexpected exception (a traceback a user would see),
a record that is missing from where it should be (lost), or a run file that does not parse back
to the record the engine returned (corrupt) is counted against its category *and* fails the
test. At the end of the session the table is printed, and a non-zero count of tracebacks, lost
or corrupt records fails the session even if a test swallowed the assertion.

Set ``FTBENCH_TALLY_JSON=path`` to also write the figures as JSON (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

CATEGORIES = ("presets", "run files", "training faults", "signals & exit codes", "concurrency",
              "safety")
COLUMNS = ("cases", "tracebacks", "lost", "corrupt")
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Tally:
    counts: dict[str, Counter] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def _row(self, category: str) -> Counter:
        if category not in CATEGORIES:
            raise ValueError(f"unknown tally category {category!r}")
        return self.counts.setdefault(category, Counter())

    def add(self, category: str, n: int = 1) -> None:
        """``n`` more bad inputs / injected faults tried in ``category``."""
        self._row(category)["cases"] += n

    def _bad(self, category: str, column: str, detail: str) -> None:
        self._row(category)[column] += 1
        self.problems.append(f"{category}: {column}: {detail}")

    @contextmanager
    def case(self, category: str, expected: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        """One case: an exception other than ``expected`` (or a failed assertion) is a crash."""
        self.add(category)
        try:
            yield
        except expected:
            raise
        except AssertionError:
            raise
        except BaseException as exc:
            self._bad(category, "tracebacks", f"{type(exc).__name__}: {str(exc)[:200]}")
            raise

    @contextmanager
    def guard(self, category: str) -> Iterator[None]:
        """Code under test that belongs to a case already counted: an exception is a crash."""
        try:
            yield
        except AssertionError:
            raise
        except BaseException as exc:
            self._bad(category, "tracebacks", f"{type(exc).__name__}: {str(exc)[:200]}")
            raise

    def check_output(self, category: str, text: str) -> None:
        """Output a user would see: a Python traceback in it counts, and fails the test."""
        if TRACEBACK in text:
            self._bad(category, "tracebacks", text[text.index(TRACEBACK):][:300])
            raise AssertionError(f"traceback in output:\n{text[-2000:]}")

    def check_saved(self, category: str, folder: Path, records: Sequence[Any]) -> None:
        """Each record is in ``folder`` as ``<run_id>.json``, parses, and equals what the engine
        returned (else lost / corrupt); no temporary or partial file is left in the folder."""
        from ftbench.results.store import load_file

        for record in records:
            path = folder / f"{record.run_id}.json"
            if not path.is_file():
                self._bad(category, "lost", f"{record.run_id} not in {folder}")
                raise AssertionError(f"record {record.run_id} lost: not in {folder}")
            try:
                back = load_file(path)
            except Exception as exc:
                self._bad(category, "corrupt", f"{path.name}: {exc}")
                raise AssertionError(f"record {path} corrupt: {exc}") from None
            if json.dumps(back.to_dict(), sort_keys=True, default=str) != \
                    json.dumps(record.to_dict(), sort_keys=True, default=str):
                self._bad(category, "corrupt", f"{path.name}: differs from the returned record")
                raise AssertionError(f"record {path} differs from the record the engine returned")
        self.check_no_partial(category, folder)

    def check_no_partial(self, category: str, folder: Path) -> None:
        if not folder.exists():
            return
        partial = [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix != ".json"]
        if partial:
            self._bad(category, "corrupt", f"partial files in {folder}: {partial[:3]}")
            raise AssertionError(f"partial files left in {folder}: {partial}")

    def totals(self) -> Counter:
        total: Counter = Counter()
        for row in self.counts.values():
            total.update(row)
        return total

    def failed(self) -> bool:
        t = self.totals()
        return bool(t["tracebacks"] or t["lost"] or t["corrupt"])

    def table(self) -> list[str]:
        width = max(len(c) for c in CATEGORIES + ("total",))
        head = f"{'category':<{width}}  " + "  ".join(f"{c:>10}" for c in COLUMNS)
        lines = [head, "-" * len(head)]
        for category in CATEGORIES:
            if category in self.counts:
                row = self.counts[category]
                lines.append(f"{category:<{width}}  " + "  ".join(f"{row[c]:>10}" for c in COLUMNS))
        total = self.totals()
        lines.append("-" * len(head))
        lines.append(f"{'total':<{width}}  " + "  ".join(f"{total[c]:>10}" for c in COLUMNS))
        return lines

    def as_json(self) -> dict[str, Any]:
        return {"categories": {k: {c: v[c] for c in COLUMNS} for k, v in self.counts.items()},
                "total": {c: self.totals()[c] for c in COLUMNS}, "problems": self.problems}


TALLY = Tally()


@pytest.fixture
def quick_cpu_runs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tiny CPU runs, fast on two shared cores: one torch thread (contending for both cores is
    several times slower), and no full `gc.collect()` from accelerate's end-of-training cache
    clearing (half of a warm tiny run in a big test process; it frees no device memory here).
    Neither changes what a run does or records."""
    import accelerate.utils.memory
    import torch

    monkeypatch.setattr(accelerate.utils.memory, "clear_device_cache", lambda *a, **k: None)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not TALLY.counts:
        return
    terminalreporter.section("ftbench reliability tally")
    for line in TALLY.table():
        terminalreporter.write_line(line)
    total = TALLY.totals()
    verdict = "OK" if not TALLY.failed() else "FAILED"
    terminalreporter.write_line(
        f"{verdict}: {total['cases']} bad inputs and injected faults, {total['tracebacks']} "
        f"tracebacks, {total['lost']} lost and {total['corrupt']} corrupt records")
    for problem in TALLY.problems[:20]:
        terminalreporter.write_line(f"  {problem}")
    target = os.environ.get("FTBENCH_TALLY_JSON")
    if target:
        Path(target).write_text(json.dumps(TALLY.as_json(), indent=2) + "\n", encoding="utf-8")


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if TALLY.failed() and session.exitstatus == 0:
        session.exitstatus = 1
