"""One bounds checker: a `Rule` says what a value may be, and every front door asks it.

Presets (TOML), the spec dataclasses (`__post_init__`), method arguments, CLI flags
(argparse ``type=``) and the TUI start dialog all check values through `Rule`, so a bound
written once holds everywhere. Rules sit beside the data they govern, as field metadata
(`ruled`), and are read back with `field_rules`. Pure Python: no heavy imports.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import Field, dataclass, field, fields, replace
from typing import Any, Callable

from ftbench.errors import FtbenchError
from ftbench.text import printable

MAX_STR = 20_000
_NOUN = {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
         "table": "a table", "list": "a list"}


@dataclass(frozen=True)
class Rule:
    """What a value may be: a kind, optional bounds (inclusive unless ``*_exclusive``), choices.

    ``required`` matters where keys may be missing (preset tables); ``auto`` also allows the
    string "auto"; ``nonempty`` refuses blank strings.
    """

    kind: str                      # "str" | "int" | "float" | "bool" | "table" | "list"
    required: bool = False
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    max_exclusive: bool = False
    choices: tuple[Any, ...] | None = None
    nonempty: bool = True
    auto: bool = False

    # --- words -----------------------------------------------------------------------------
    def describe(self) -> str:
        """The allowed values in words, e.g. ``an integer >= 1 and <= 50``."""
        if self.auto:
            return replace(self, auto=False).describe() + ' or "auto"'
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = []
        if self.min is not None:
            bounds.append(("> " if self.min_exclusive else ">= ") + fmt_bound(self.min))
        if self.max is not None:
            bounds.append(("< " if self.max_exclusive else "<= ") + fmt_bound(self.max))
        return _NOUN[self.kind] + (" " + " and ".join(bounds) if bounds else "")

    # --- checks ----------------------------------------------------------------------------
    def type_ok(self, v: Any) -> bool:
        if self.auto and v == "auto":
            return True
        return {
            "str": isinstance(v, str),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "table": isinstance(v, dict),
            "list": isinstance(v, (list, tuple)),
        }[self.kind]

    def violated_bound(self, v: float) -> str | None:
        """The bound a number breaks, as ``">= 1"`` or ``"< 1"``; None when it is in range."""
        if self.min is not None and (v <= self.min if self.min_exclusive else v < self.min):
            return ("> " if self.min_exclusive else ">= ") + f"{self.min:g}"
        if self.max is not None and (v >= self.max if self.max_exclusive else v > self.max):
            return ("< " if self.max_exclusive else "<= ") + f"{self.max:g}"
        return None

    def problem(self, v: Any) -> str | None:
        """What is wrong with ``v`` in one line, or None when it is allowed."""
        if self.auto and v == "auto":
            return None
        if not self.type_ok(v):
            return f"expected {self.describe()}, got {typename(v)} {short(v)}"
        if self.kind == "str":
            if self.nonempty and not v.strip():
                return "must not be empty"
            if len(v) > MAX_STR:
                return f"string of {len(v):,} characters is too long (max {MAX_STR:,})"
            if self.choices and v not in self.choices:
                return f"{v!r} is not allowed; expected {self.describe()}"
        if self.kind in ("int", "float"):
            if isinstance(v, float) and not math.isfinite(v):
                return f"expected a finite number, got {v}"
            if self.violated_bound(v) is not None:
                return f"{short(v)} is out of range; expected {self.describe()}"
        return None

    def check(self, v: Any, name: str, error: type[FtbenchError] = FtbenchError) -> None:
        """Raise ``error("<name>: <problem>")`` when ``v`` is not allowed."""
        message = self.problem(v)
        if message is not None:
            raise error(f"{printable_key(name)}: {message}")

    # --- text from people (CLI flags, TUI inputs) -----------------------------------------
    def parse(self, text: str, name: str) -> Any:
        """A number typed by a person, checked; FtbenchError with one line when it is not."""
        raw = text.strip()
        if self.auto and raw.lower() == "auto":
            return "auto"
        try:
            value: Any = int(raw) if self.kind == "int" else float(raw)
        except ValueError:
            noun = "a whole number" if self.kind == "int" else "a number"
            raise FtbenchError(f"{name} must be {noun}{' or auto' if self.auto else ''}, "
                               f"got {short(raw)}") from None
        self.check(value, name)
        return value

    def arg_type(self, flag: str) -> Callable[[str], Any]:
        """An argparse ``type=`` callable: the parsed value, or a range message."""
        kind = self.kind

        def convert(text: str) -> Any:
            if self.auto and text.strip().lower() == "auto":
                return "auto"
            try:
                value: Any = int(text) if kind == "int" else float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"invalid {kind} value: {text!r}") from None
            message = self.problem(value)
            if message is not None:
                raise argparse.ArgumentTypeError(message)
            return value

        convert.__name__ = kind
        return convert


# --- rules as dataclass field metadata -----------------------------------------------------

def ruled(rule: Rule, **kwargs: Any) -> Any:
    """A dataclass field governed by ``rule`` (``default=`` / ``default_factory=`` as usual)."""
    return field(metadata={"rule": rule}, **kwargs)


def field_rules(cls: type) -> dict[str, Rule]:
    """The rules on a dataclass's fields, in field order."""
    return {f.name: f.metadata["rule"] for f in fields(cls) if "rule" in f.metadata}


def validate_fields(obj: Any, error: type[FtbenchError]) -> None:
    """Check every ruled field of a dataclass instance; ``None`` passes unless required."""
    for f in fields(obj):
        rule = _rule_of(f)
        if rule is None:
            continue
        value = getattr(obj, f.name)
        if value is None and not rule.required:
            continue
        message = rule.problem(value)
        if message is not None:
            raise error(f"{type(obj).__name__}.{printable_key(f.name)}: {message}").about(f.name, message)


def _rule_of(f: Field[Any]) -> Rule | None:
    return f.metadata.get("rule")


# --- small words shared by the messages ----------------------------------------------------

def fmt_bound(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def typename(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(v), type(v).__name__)


def short(v: Any, width: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= width else text[: width - 3] + "..."


def printable_key(text: str) -> str:
    """Keys come from files ("a\\nb" = 1 is valid TOML): escape them so a message stays one line."""
    return printable(text)
