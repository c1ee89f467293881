"""docs/plan-vs-measured.md's run-order table is recomputed from the records it names
(docs/plan-vs-measured-runs/order/<label>/): the page cannot drift from them."""

from __future__ import annotations

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_order_table_quotes_its_records() -> None:
    page = (DOCS / "plan-vs-measured.md").read_text(encoding="utf-8")
    folders = sorted((DOCS / "plan-vs-measured-runs" / "order").iterdir())
    assert len(folders) == 7
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            record = json.loads(path.read_text())
            plan = record["prediction"]
            growth = record["memory"]["process_peak_rss_mb"] - plan["baseline_rss_mb"]
            needs = plan["memory"]["device_total_mb"]
            row = (f"| `{folder.name}` | {record['method']} | {plan['rss_window']['runs_before']} | "
                   f"{plan['baseline_rss_mb']:,.0f} | {growth:,.0f} | {plan['memory']['peak_mb']:,.0f} | "
                   f"{needs:,.0f} | {(needs - growth) / growth * 100:+.0f} % |")
            assert row in page, row
