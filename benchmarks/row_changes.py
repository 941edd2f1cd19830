"""How much of what the continuous export sends after a modification batch is rows that really changed.

    .venv/bin/python benchmarks/row_changes.py --lines 1000000 [--modified 0.01] [--seed 1]

SPEC §6 sends every row, all periods, of each line whose rows of a type changed. This script measures how much
of that is change (BENCHMARKS.md, Session 10): it generates a data set and its modification batch with the
project's generator (the seeds `revrec bench` uses), imports and computes the data set in a warehouse in a
temporary folder, keeps every row's key (line, period) and checksum for the five line-period export types (the
export query's own `_h`, sql/exports/<type>.sql, over the rows the file would hold), then imports and computes
the batch and compares. Per type it prints the type's rows, the rows of the lines whose rows changed (what the
continuous export writes, tombstones aside), how many of those really changed, and how many rows vanished.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from revrec_pipelines.lib import engine, exports, generator, importer, sources, warehouse

LINE_PERIOD_TYPES = (
    "unearned_revenue_rollforward",
    "revenue",
    "deferred_revenue_balance",
    "revenue_backlog",
    "expenses",
)
HOME_CURRENCY = "USD"  # the generator's home currency


def _import_and_compute(con, folder: Path) -> None:
    report = importer.import_from_source(con, sources.LocalFolderSource(folder), progress=lambda _m: None)
    if report.rejected:
        raise SystemExit(report.failure_message())
    engine.compute(con, HOME_CURRENCY)


def _rows(export_type: str) -> str:
    return f"SELECT _item, _s0, _h FROM ({exports.export_query(export_type, 'line_periods')})"


def measure(lines: int, modified: float = 0.01, seed: int = 1) -> dict[str, tuple[int, int, int, int]]:
    """Per line-period type: (its rows, rows of the lines whose rows changed, rows that changed, rows that
    vanished), after the batch."""
    tmp = Path(tempfile.mkdtemp(prefix="revrec-row-changes-"))
    try:
        base, mods = tmp / "base", tmp / "mods"
        generator.generate(base, lines=lines, seed=seed)
        generator.generate_modifications(base, mods, fraction=modified, seed=seed + 1)
        con = warehouse.connect(tmp / "w.duckdb")
        _import_and_compute(con, base)
        for export_type in LINE_PERIOD_TYPES:
            con.execute(f"CREATE TABLE rows_before_{export_type} AS {_rows(export_type)}")
        _import_and_compute(con, mods)
        counts = {}
        for export_type in LINE_PERIOD_TYPES:
            counts[export_type] = con.execute(f"""
                WITH now AS ({_rows(export_type)}),
                diff AS (
                    SELECT coalesce(n._item, b._item) AS item, n._h IS NULL AS vanished
                    FROM now n FULL JOIN rows_before_{export_type} b ON n._item = b._item AND n._s0 = b._s0
                    WHERE n._h IS DISTINCT FROM b._h
                )
                SELECT (SELECT count(*) FROM now),
                       (SELECT count(*) FROM now WHERE _item IN (SELECT item FROM diff)),
                       (SELECT count(*) FROM diff WHERE NOT vanished),
                       (SELECT count(*) FROM diff WHERE vanished)
            """).fetchall()[0]
        con.close()
        return counts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, required=True)
    parser.add_argument("--modified", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    counts = measure(args.lines, args.modified, args.seed)
    print(f"{args.lines:,} lines, a {args.modified:.1%} batch (seed {args.seed})")
    print(f"{'type':30s} {'its rows':>12s} {'rows sent':>12s} {'changed':>12s} {'vanished':>10s}")
    totals = [sum(c[i] for c in counts.values()) for i in range(4)]
    for name, c in [*counts.items(), ("all five", totals)]:
        print(f"{name:30s} {c[0]:>12,} {c[1]:>12,} {c[2]:>12,} {c[3]:>10,}")
    print(f"changed / sent: {totals[2] / max(totals[1], 1):.0%}; sent / all rows: {totals[1] / max(totals[0], 1):.1%}")


if __name__ == "__main__":
    main()
