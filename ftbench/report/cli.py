"""``ftbench compare`` and ``ftbench export``: argparse wiring over the report modules.

The only module of `ftbench.report` that prints. Imports of Rich and plotext happen inside
the commands, so building the ``ftbench`` parser (``ftbench --help``) stays cheap.

Exit codes: 0 success; 2 for anything the user can fix (no runs folder, no readable runs,
nothing matching the selection, an unknown or ambiguous id, an unwritable output path),
each with one clear line on stderr and never a traceback. Unreadable run files are not
errors: each is reported as one ``ftbench: skipped <path>: <why>`` line and left out.
"""

from __future__ import annotations

import argparse
import io
import sys
from typing import TYPE_CHECKING, Any, Sequence

from ftbench.errors import FtbenchError
from ftbench.report.groups import build_comparison
from ftbench.report.select import Selection, select_runs, split_values
from ftbench.terms import EXIT_OK, EXIT_USAGE
from ftbench.text import printable

if TYPE_CHECKING:
    from ftbench.results.record import RunRecord
    from ftbench.results.store import LoadResult

EXPORT_FORMATS = ("csv", "md", "json")  # == export.FORMATS, kept here to import nothing heavy
STATUSES = ("completed", "failed", "cancelled", "diverged")


class UsageError(FtbenchError):
    """Something the user can fix; printed as one line, exit status 2."""


def _positive(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="*", metavar="RUN_ID",
                        help="runs to include, by id or unique id prefix (default: all)")
    parser.add_argument("--preset", metavar="NAME", help="only runs of this preset")
    parser.add_argument("--latest", action="store_true",
                        help="only the most recent completed run per method/model/dataset/seed "
                             "of the preset (the most recent of any status where none "
                             "completed; the newest preset without --preset)")
    parser.add_argument("--method", action="append", default=[], metavar="NAME",
                        help="only these methods (repeat or comma-separate)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME",
                        help="only these models (repeat or comma-separate)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME",
                        help="only these datasets (repeat or comma-separate)")
    parser.add_argument("--status", action="append", default=[], metavar="STATUS",
                        help=f"only runs with this status ({', '.join(STATUSES)})")
    parser.add_argument("--per-run", action="store_true",
                        help="one row per run instead of mean ± std per group of seeds")
    parser.add_argument("--by-budget", action="store_true",
                        help="one table per budget (max steps, epochs, train/eval size, batch, "
                             "sequence length, model, dataset) instead of a warning that runs "
                             "on one table differ in budget")
    parser.add_argument("--no-references", action="store_true",
                        help="leave out the figures reported by the preset's write-up")
    parser.add_argument("--runs-dir", metavar="DIR",
                        help="folder of run files (default: ./runs or $FTBENCH_RUNS_DIR)")


def add_compare_parser(subparsers: "argparse._SubParsersAction[Any]") -> argparse.ArgumentParser:
    """Register ``ftbench compare`` on the main parser's subparsers."""
    parser = subparsers.add_parser(
        "compare", help="compare saved runs: table, mean ± std over seeds, charts",
        description="Compare saved runs: one row per method (mean ± std over seeds), the "
                    "write-up's reported figures beside them, and terminal charts including "
                    "Pareto fronts of metric vs trainable parameters and vs peak memory.")
    _add_selection(parser)
    parser.add_argument("--no-charts", action="store_true", help="tables only")
    parser.add_argument("--json", action="store_true",
                        help="print the comparison as JSON (groups, rows, Pareto members)")
    parser.add_argument("--width", type=_positive(40), metavar="COLUMNS",
                        help="layout width (default: the terminal's)")
    parser.add_argument("--height", type=_positive(8), metavar="ROWS",
                        help="chart height (default: the terminal's, at most 22)")
    parser.add_argument("--x-axis", choices=("step", "time"), default="step",
                        help="x of the overlaid loss and metric curves: optimizer step or "
                             "training time (default: step)")
    parser.add_argument("--save-charts", metavar="FILE",
                        help="also write the charts to FILE: an SVG picture (in colour) when "
                             "FILE ends in .svg, else plain text without colour")
    parser.set_defaults(func=cmd_compare)
    return parser


def add_export_parser(subparsers: "argparse._SubParsersAction[Any]") -> argparse.ArgumentParser:
    """Register ``ftbench export`` on the main parser's subparsers."""
    parser = subparsers.add_parser(
        "export", help="export runs as CSV, Markdown or JSON",
        description="Export runs: csv (one flat row per run), md (README-ready tables with "
                    "mean ± std), json (the run records). Writes to stdout or -o FILE.")
    _add_selection(parser)
    parser.add_argument("--format", "-f", choices=EXPORT_FORMATS, default="md",
                        help="output format (default: md)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write to FILE (atomically) instead of stdout")
    parser.set_defaults(func=cmd_export)
    return parser


# --- shared ---------------------------------------------------------------------------------



def _error(message: str) -> None:
    print(f"ftbench: error: {printable(message)}", file=sys.stderr)


def _warn_problems(loaded: "LoadResult") -> None:
    for path, problem in loaded.problems:
        print(f"ftbench: skipped {printable(str(path))}: {printable(problem)}", file=sys.stderr)


def _statuses(values: Sequence[str]) -> tuple[str, ...]:
    statuses = split_values(values)
    unknown = [s for s in statuses if s.casefold() not in STATUSES]
    if unknown:
        raise UsageError(f"unknown status {unknown[0]!r} (use {', '.join(STATUSES)})")
    return statuses


def load_selected(args: argparse.Namespace) -> "tuple[LoadResult, list[RunRecord]]":
    """Load the runs folder, report unreadable files, apply the selection.

    Raises `UsageError` when there is nothing to report on, saying why.
    """
    from ftbench.results.store import load_runs, runs_dir  # the run store: not for --help

    folder = runs_dir(args.runs_dir)
    if not folder.exists():
        raise UsageError(f"no runs folder {folder} (run `ftbench run --preset quickstart` "
                         "first, or pass --runs-dir)")
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    loaded = load_runs(folder)
    _warn_problems(loaded)
    if not loaded.records:
        raise UsageError(f"no readable runs in {folder}")
    selection = Selection(
        ids=tuple(args.ids), preset=args.preset, latest=args.latest,
        methods=split_values(args.method), models=split_values(args.model),
        datasets=split_values(args.dataset), statuses=_statuses(args.status),
    )
    records = select_runs(loaded.records, selection)
    if not records:
        raise UsageError(f"no runs match {selection.describe()} "
                         f"({len(loaded.records)} runs in {folder})")
    return loaded, records


def _guard(command: Any, args: argparse.Namespace) -> int:
    try:
        return int(command(args))
    except FtbenchError as exc:
        _error(str(exc))
        return EXIT_USAGE


# --- compare --------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    """``ftbench compare``: tables (and charts) on stdout, or ``--json``."""
    return _guard(_compare, args)


def _compare(args: argparse.Namespace) -> int:
    loaded, records = load_selected(args)
    comparison = build_comparison(records, per_run=args.per_run, by_budget=args.by_budget)
    references = not args.no_references
    if args.json:
        from ftbench.report.export import comparison_json, dumps_json  # Rich, through it: not for --help

        data = comparison_json(comparison, loaded.problems)
        if not references:
            for section in data["sections"]:
                section["references"] = []
        sys.stdout.write(dumps_json(data))
        return EXIT_OK

    # Rich, the tables and the charts load only for this command, not for --help
    from rich.console import Console
    from rich.text import Text

    from ftbench.report.charts import charts, charts_text, section_charts
    from ftbench.report.tables import section_tables

    console = Console(width=args.width) if args.width else Console()
    width = console.width
    # Charts fill the terminal's width and, up to 22 rows, its height (one chart per screen).
    height = args.height or max(12, min(22, console.height - 2))
    colorless = console.no_color or console.color_system is None
    from ftbench.report.planned import plan_table  # only for this command, not for --help

    for section in comparison.sections:  # each preset: its tables, then its charts
        for table in section_tables(section, width, references=references):
            console.print(table)
            console.print()
        planned = plan_table(section.runs, section.title)
        if planned is not None:  # what `ftbench plan` predicted for these runs, beside them
            console.print(planned)
            console.print()
        if not args.no_charts:
            for chart in section_charts(section, width, height, colorless, args.x_axis):
                console.print(Text.from_ansi(chart.text), no_wrap=True, overflow="crop")
                console.print()
    if not args.per_run:  # --tune sweeps: chosen values, tuned vs default, sensitivity
        from ftbench.report.tuning import tuning_lines  # only for this command, not for --help

        for item in tuning_lines(records, width, height, colorless):
            console.print(Text.from_ansi(item) if isinstance(item, str) else item)
            console.print()
    if args.save_charts:
        from ftbench.report.export import write_atomic  # only for this command, not for --help

        if str(args.save_charts).lower().endswith(".png"):
            raise UsageError("PNG is not supported; save as .svg (any browser or "
                             "`rsvg-convert` turns it into a PNG)")
        if str(args.save_charts).lower().endswith(".svg"):
            path = write_atomic(args.save_charts, charts_svg(
                charts(comparison, width, height, colorless=False, x_axis=args.x_axis), width))
        else:
            saved = charts(comparison, width, height, colorless=True, x_axis=args.x_axis)
            path = write_atomic(args.save_charts, charts_text(saved))
        print(f"ftbench: charts saved to {path}", file=sys.stderr)
    return EXIT_OK


def charts_svg(items: Sequence[Any], width: int) -> str:
    """The charts as one SVG picture, drawn by Rich from the same text the terminal shows."""
    from rich.console import Console  # Rich: not for --help
    from rich.text import Text

    console = Console(width=width, record=True, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    for chart in items:
        console.print(Text.from_ansi(chart.text), no_wrap=True, overflow="crop")
        console.print()
    return console.export_svg(title="ftbench compare")


# --- export ---------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    """``ftbench export``: CSV / Markdown / JSON to stdout or ``-o FILE``."""
    return _guard(_export, args)


def _export(args: argparse.Namespace) -> int:
    from ftbench.report.export import export_text, write_atomic  # Rich, through it: not for --help

    _, records = load_selected(args)
    comparison = build_comparison(records, per_run=args.per_run, by_budget=args.by_budget) \
        if args.format == "md" else None
    text = export_text(args.format, records, comparison, references=not args.no_references)
    if args.output:
        path = write_atomic(args.output, text)
        print(f"ftbench: wrote {len(records)} runs to {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK
