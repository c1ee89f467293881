"""Text from outside (files, exceptions, run records) made safe for one line of a terminal.

`printable` escapes control characters (they cannot drive the terminal or break a table row);
`one_line` folds any text into one bounded line; `error_line` does that for an exception.
Pure Python, no imports beyond the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence


def printable(text: object, replacement: str | None = None) -> str:
    """``text`` with every non-printable character escaped (``\\x1b``), or replaced by
    ``replacement`` when one is given."""
    if replacement is None:
        return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))
    return "".join(ch if ch.isprintable() else replacement for ch in str(text))


def one_line(text: object, limit: int = 200) -> str:
    """Printable, white space folded to single spaces, at most ``limit`` characters (…)."""
    clean = " ".join(printable(text, " ").split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def error_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message as `one_line`, or its class name when the message is empty."""
    return one_line(str(exc), limit) or exc.__class__.__name__


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """`` (did you mean 'quickstart'?)`` for a near miss, else ""."""
    import difflib  # only for a near miss: every start-up (`ftbench --help` too) loads this module

    lowered = {c.casefold(): c for c in choices}
    close = difflib.get_close_matches(word.casefold(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[close[0]]!r}?)" if close else ""
