"""A read-only copy of the warehouse for analysts.

DuckDB allows one writing process, or several read-only ones, never both: an analyst holding the live
warehouse open would block the next run. The snapshot is a complete copy (tables, views, macros) written
next to it after each computation and swapped in atomically, so analysts can keep it open while runs write.

The copy is the database file's bytes, taken right after a `CHECKPOINT` (which writes every committed change
into the file and empties the write-ahead log) by the connection that holds the file: DuckDB's lock keeps
every other process from opening it to write, and the connection writes nothing while the bytes are copied.
Re-encoding every table into a new file (`COPY FROM DATABASE`) took 13.3 s at a million lines; the byte copy
with its check takes 0.5–0.65 s (docs/decisions.md). The copy is opened read-only and its tables counted against
the warehouse's before it replaces the previous one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb


class SnapshotError(RuntimeError):
    """The copy did not match the warehouse; the previous copy was kept."""


def snapshot_path(warehouse: str | os.PathLike[str]) -> Path:
    p = Path(warehouse)
    return p.with_name(p.stem + "-analyst" + p.suffix)


def table_rows(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary ORDER BY ALL",
        [database],
    ).fetchall()
    return {
        f"{schema}.{table}": con.execute(f'SELECT count(*) FROM "{database}"."{schema}"."{table}"').fetchall()[0][0]
        for schema, table in tables
    }


def write_snapshot(con: duckdb.DuckDBPyConnection, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    database, path = con.execute(
        "SELECT database_name, path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()[0]
    con.execute("CHECKPOINT")
    expected = table_rows(con, database)
    try:
        shutil.copyfile(path, tmp)
        copy = duckdb.connect(str(tmp), read_only=True)
        try:
            found = table_rows(copy, copy.execute("SELECT current_database()").fetchall()[0][0])
        finally:
            copy.close()
        if found != expected:
            differ = sorted(t for t in expected.keys() | found.keys() if expected.get(t) != found.get(t))
            raise SnapshotError(
                f"The analysts' copy of {path} does not match the warehouse (row counts differ in {', '.join(differ)}); "
                f"the previous copy at {target} was kept. Run the analyst_warehouse asset again."
            )
        os.replace(tmp, target)  # readers that have the old copy open keep it; new readers see the new one
    finally:
        tmp.unlink(missing_ok=True)
    return target
