"""Comparison and reports over saved runs, shared by the CLI (``compare``, ``export``) and the TUI.

The model is pure Python and cheap to import; Rich tables and plotext charts live in their
own modules (`ftbench.report.tables`, `ftbench.report.charts`) and are imported by callers
that draw. Typical use::

    from ftbench.results.store import load_runs
    from ftbench.report import Selection, build_comparison, select_runs
    from ftbench.report.tables import comparison_tables
    from ftbench.report.charts import charts

    loaded = load_runs()
    comparison = build_comparison(select_runs(loaded.records, Selection(latest=True)))
    tables = comparison_tables(comparison, width=120)          # list[rich.table.Table]
    figures = charts(comparison, width=100, height=20)         # list[Chart(title, text)]
"""

from ftbench.report.groups import (
    Comparison, Front, Group, GroupKey, ReferenceRow, Section, Stat, build_comparison,
    flatten_record,
)
from ftbench.report.pareto import Point, dominates, pareto_front
from ftbench.report.select import Selection, SelectionError, latest_runs, select_runs

__all__ = [
    "Comparison", "Front", "Group", "GroupKey", "Point", "ReferenceRow", "Section", "Selection",
    "SelectionError", "Stat", "build_comparison", "dominates", "flatten_record", "latest_runs",
    "pareto_front", "select_runs",
]
