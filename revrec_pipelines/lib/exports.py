"""Close-period export files (SPEC §6): one CSV per type with the rows of the closed period, written with
DuckDB COPY to a temporary file and published atomically at the destination."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from revrec_pipelines.lib import sql
from revrec_pipelines.lib.sources import ExportDestination

# type → frozen table it is read from
CLOSE_EXPORT_SOURCES = {
    "unearned_revenue_rollforward": "frozen_line_periods",
    "revenue": "frozen_line_periods",
    "deferred_revenue_balance": "frozen_line_periods",
    "orders": "frozen_orders",
    "journals": "frozen_journal_lines",
    "invoices": "frozen_invoice_register",
    "expenses": "frozen_line_periods",
    "revenue_backlog": "frozen_line_periods",
}


@dataclass
class ExportedFile:
    type: str
    name: str
    rows: int


def utc_timestamp(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


KEY_COLUMNS = "_item, _s0, _s1, _s2, _s3, _h"


def file_query(export_query: str, extra_columns: str = "") -> str:
    """The rows of an export query as written: sorted by their raw key (code point), key columns dropped."""
    return (
        f"SELECT * EXCLUDE ({KEY_COLUMNS}){extra_columns} FROM ({export_query}) "
        "ORDER BY _s0 NULLS FIRST, _s1, _s2, _s3 NULLS FIRST"
    )


def copy_query_to_csv(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Write the query's rows to `path` as CSV; returns the number of rows written (COPY's own count: a
    quoted value may hold a line break, so the file's lines are not its rows)."""
    return con.execute(
        f"COPY ({query}) TO '{path.as_posix()}' (FORMAT csv, HEADER, DELIMITER ',', QUOTE '\"')"
    ).fetchall()[0][0]


def write_close_exports(
    con: duckdb.DuckDBPyConnection,
    period: int,
    destination: ExportDestination,
    export_timestamp: str | None = None,
) -> list[ExportedFile]:
    closed = con.execute("SELECT count(*) FROM closed_periods WHERE period = ?", [period]).fetchall()[0][0]
    if not closed:
        raise ValueError(f"{period} is not closed: close-period exports are written for closed periods only")
    stamp = export_timestamp or utc_timestamp()
    files = []
    with tempfile.TemporaryDirectory(prefix="revrec-export-") as tmp:
        for export_type, source in CLOSE_EXPORT_SOURCES.items():
            name = f"closedperiodexport-{export_type}-{period}.csv"
            local = Path(tmp) / name
            query = sql.render(f"exports/{export_type}", rows=f"Actg_Period = {period}", source=source)
            rows = copy_query_to_csv(con, file_query(query), local)
            destination.write_file(name, local)
            files.append(ExportedFile(export_type, name, rows))
        name = f"closedperiodexport-control-{period}.csv"
        local = Path(tmp) / name
        local.write_text(f"Closed_Period,Export_Timestamp\n{period},{stamp}\n", encoding="utf-8")
        destination.write_file(name, local)
        files.append(ExportedFile("control", name, 1))
    return files
