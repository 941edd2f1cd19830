"""A read-only copy of the warehouse for analysts.

DuckDB allows one writing process, or several read-only ones, never both: an analyst holding the live
warehouse open would block the next run. The snapshot is a complete copy (tables, views, macros) written
next to it after each computation and swapped in atomically, so analysts can keep it open while runs write.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb


def snapshot_path(warehouse: str | os.PathLike[str]) -> Path:
    p = Path(warehouse)
    return p.with_name(p.stem + "-analyst" + p.suffix)


def write_snapshot(con: duckdb.DuckDBPyConnection, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    for stale in (tmp, tmp.with_name(tmp.name + ".wal")):
        stale.unlink(missing_ok=True)
    source = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH '{tmp.as_posix()}' AS analyst_snapshot")
    try:
        con.execute(f'COPY FROM DATABASE "{source}" TO analyst_snapshot')
    finally:
        con.execute("DETACH analyst_snapshot")
    os.replace(tmp, target)  # readers that have the old copy open keep it; new readers see the new one
    return target
