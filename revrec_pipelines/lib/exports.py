"""Close-period export files (SPEC §6): one CSV per type with the rows of the closed period, written with
DuckDB COPY to a temporary file and published atomically at the destination."""

from __future__ import annotations

import itertools
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
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
# What an export query (sql/exports/*.sql, `{order_key}`) sorts its rows by after the period (SPEC §6, by code
# point): the order and the line. RANK_KEY: the same order as one integer, for a source that carries `_rank`,
# the rank of its rows' (order, line) pairs in code-point order (sql/continuous/rank.sql). Rows with the same
# period and rank have the same order and line, so the files are the same; a sort on an integer is cheaper
# than on two texts (BENCHMARKS.md, session 9). Their _s2 is then empty.
ORDER_KEY = "src.Sales_Order_Id AS _s1, src.Sales_Order_Item_Id AS _s2"
RANK_KEY = "src._rank AS _s1, NULL AS _s2"


def export_query(export_type: str, source: str, rows: str = "true", order_key: str = ORDER_KEY) -> str:
    """The export rows of a type (sql/exports/<type>.sql) from `source`, those matching `rows`, with their raw
    keys (KEY_COLUMNS) and the row checksum `_h`."""
    return sql.render(f"exports/{export_type}", rows=rows, source=source, order_key=order_key)


def file_query(export_query: str, extra_columns: str = "") -> str:
    """The rows of an export query as written: sorted by their raw key (code point), key columns dropped."""
    return (
        f"SELECT * EXCLUDE ({KEY_COLUMNS}){extra_columns} FROM ({export_query}) "
        "ORDER BY _s0 NULLS FIRST, _s1, _s2, _s3 NULLS FIRST"
    )


def copy_query_to_csv(con: duckdb.DuckDBPyConnection, query: str, path: Path, header: bool = True) -> int:
    """Write the query's rows to `path` as CSV; returns the number of rows written (COPY's own count: a
    quoted value may hold a line break, so the file's lines are not its rows)."""
    return con.execute(
        f"COPY ({query}) TO '{path.as_posix()}' (FORMAT csv, HEADER {str(header).lower()}, DELIMITER ',', QUOTE '\"')"
    ).fetchall()[0][0]


def period_slice_bounds(rows_by_period: list[tuple[int, int]], limit: int) -> list[int]:
    """Where to cut a file's periods so that each slice holds at most `limit` rows (a single period with more
    stays one slice, with any periods of no rows before it): the last period of every slice but the last, from
    (period, rows) in period order."""
    bounds: list[int] = []
    held = 0
    previous = None
    for period, rows in rows_by_period:
        if previous is not None and held and held + rows > limit:
            bounds.append(previous)
            held = 0
        held += rows
        previous = period
    return bounds


def _append_file(out_fd: int, part: Path) -> None:
    """Append a part file's bytes at `out_fd`'s offset: in the kernel where it can (Linux), else by reading."""
    with open(part, "rb", buffering=0) as src:
        remaining = os.fstat(src.fileno()).st_size
        try:
            while remaining > 0:
                n = os.copy_file_range(src.fileno(), out_fd, remaining)
                if n == 0:
                    break
                remaining -= n
        except (AttributeError, OSError):  # no copy_file_range here, or not between these file systems
            pass
        while remaining > 0:  # both offsets are where the kernel copy stopped
            chunk = src.read(min(remaining, 1 << 22))
            if not chunk:
                raise OSError(f"{part} ended {remaining} bytes early while being appended")
            view = memoryview(chunk)
            while view:
                view = view[os.write(out_fd, view):]
            remaining -= len(chunk)


def copy_rows_in_period_slices(
    con: duckdb.DuckDBPyConnection, rows_query: str, path: Path, bounds: list[int]
) -> int:
    """Write an export query's rows (with their key columns) to `path` as `file_query` sorts them, one slice
    of periods after another: the first slice holds the rows with no period (tombstones, which sort first)
    and those through bounds[0], each next one the periods after the previous bound through its own, the last
    every period after the last bound. Periods are the sort's first key, so the slices written one after the
    other make the file one sort makes, while each sort holds only its slice (sorting a million lines' rows at
    once spills to disk under the memory limit; BENCHMARKS.md). Returns the rows written."""
    if not bounds:
        return copy_query_to_csv(con, file_query(rows_query), path)
    limits = [f"_s0 IS NULL OR _s0 <= {bounds[0]}"]
    limits += [f"_s0 > {lo} AND _s0 <= {hi}" for lo, hi in itertools.pairwise(bounds)]
    limits.append(f"_s0 > {bounds[-1]}")

    def append(part: Path) -> None:
        _append_file(out, part)
        part.unlink()

    written = 0
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    # one slice is appended to the file while DuckDB sorts and writes the next
    appending: Future[None] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="revrec-append") as appender:
            for i, where in enumerate(limits):
                part = path.with_name(f"{path.name}.part{i}")
                written += copy_query_to_csv(
                    con, file_query(f"SELECT * FROM ({rows_query}) WHERE {where}"), part, header=i == 0
                )
                if appending is not None:
                    appending.result()
                appending = appender.submit(append, part)
            appending.result()
    finally:
        os.close(out)
    return written


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
            query = export_query(export_type, source, rows=f"Actg_Period = {period}")
            rows = copy_query_to_csv(con, file_query(query), local)
            destination.write_file(name, local)
            files.append(ExportedFile(export_type, name, rows))
        name = f"closedperiodexport-control-{period}.csv"
        local = Path(tmp) / name
        local.write_text(f"Closed_Period,Export_Timestamp\n{period},{stamp}\n", encoding="utf-8")
        destination.write_file(name, local)
        files.append(ExportedFile("control", name, 1))
    return files
