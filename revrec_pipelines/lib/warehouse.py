"""The DuckDB warehouse: connections and schema (tables every stage writes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from revrec_pipelines.lib import sql
from revrec_pipelines.lib.filetypes import FILE_TYPES, SQL_TYPES, FileType

SCHEMA_FILES = ("schema/ingest", "schema/revrec", "schema/close", "schema/posting", "schema/rillet", "schema/continuous")


def raw_table_ddl(ft: FileType) -> list[str]:
    cols = ",\n    ".join(f"{c.name} {SQL_TYPES[c.kind]}" for c in ft.columns)
    key_cols = ", ".join(ft.key)
    return [
        f"""CREATE TABLE IF NOT EXISTS {ft.table} (
    {cols},
    _extra VARCHAR,                 -- extra columns of the file, kept as JSON, otherwise ignored
    _row_number BIGINT,             -- row in the source file (header = row 1)
    _batch_id BIGINT NOT NULL,      -- import_batches.batch_id (or the Rillet sync batch) of this version
    _is_current BOOLEAN NOT NULL,   -- the current version of its key ({key_cols})
    _superseded_by_batch BIGINT,    -- the batch that replaced this version
    _source VARCHAR NOT NULL,       -- file | rillet
    _loaded_at TIMESTAMP NOT NULL
)""",
        # Analysts' view of the current rows of each input type.
        f"CREATE OR REPLACE VIEW {ft.name} AS SELECT * EXCLUDE (_is_current, _superseded_by_batch) "
        f"FROM {ft.table} WHERE _is_current",
    ]


def _schema_version() -> str:
    import hashlib

    h = hashlib.sha256()
    for name in SCHEMA_FILES:
        h.update(sql.sql_text(name).encode())
    for ft in FILE_TYPES.values():
        h.update(repr(raw_table_ddl(ft)).encode())
    return h.hexdigest()[:16]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every table, view and macro the project needs (idempotent; skipped when already current)."""
    version = _schema_version()
    try:
        if con.execute("SELECT version FROM revrec_schema").fetchall() == [(version,)]:
            return
    except duckdb.CatalogException:
        pass
    for ft in FILE_TYPES.values():
        table, *views = raw_table_ddl(ft)
        con.execute(table)
        # Warehouses created before the upsert compared values directly held an md5 of each row's values
        # (_row_hash, NOT NULL): the column goes, or the upsert's rows could not be written; the analysts'
        # views are created after, so that they do not show it.
        con.execute(f"ALTER TABLE {ft.table} DROP COLUMN IF EXISTS _row_hash")
        for view in views:
            con.execute(view)
    _drop_continuous_state_key(con)
    for name in SCHEMA_FILES:
        sql.run_file(con, name)
    _backfill_journal_checksums(con)
    con.execute("CREATE OR REPLACE TABLE revrec_schema AS SELECT ? AS version, current_timestamp AS created_at", [version])


def _backfill_journal_checksums(con: duckdb.DuckDBPyConnection) -> None:
    """Warehouses closed before frozen_journal_checksums existed get theirs written for every frozen period at
    once (a close and a reopen keep it in step afterwards, in their own transactions)."""
    # imported here: close builds on the engine, not on this module
    from revrec_pipelines.lib.close import record_journal_checksums

    missing = con.execute(
        "SELECT (SELECT count(*) FROM frozen_journal_checksums) = 0, (SELECT max(Actg_Period) FROM frozen_journal_lines)"
    ).fetchall()[0]
    if missing[0] and missing[1] is not None:
        with transaction(con):
            record_journal_checksums(con, 0, missing[1])


def _drop_continuous_state_key(con: duckdb.DuckDBPyConnection) -> None:
    """Warehouses created before continuous_export_state lost its PRIMARY KEY (sql/schema/continuous.sql) get
    the table rebuilt without it, rows unchanged."""
    keyed = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database() "
        "AND table_name = 'continuous_export_state' AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()[0][0]
    if keyed:
        with transaction(con):
            con.execute("CREATE TABLE continuous_export_state_unkeyed AS SELECT * FROM continuous_export_state")
            con.execute("DROP TABLE continuous_export_state")
            con.execute("ALTER TABLE continuous_export_state_unkeyed RENAME TO continuous_export_state")


# A deliberate DuckDB memory limit (DuckDB's own default is 80% of the RAM): the work that does not fit
# spills to temp_directory. With it, a million order lines run end to end in under 4 GB of RSS (see
# BENCHMARKS.md); more memory makes the largest steps faster. Every connection the project opens uses it
# unless REVREC_DUCKDB_MEMORY_LIMIT says otherwise; threads default to DuckDB's one per core
# (REVREC_DUCKDB_THREADS).
DEFAULT_MEMORY_LIMIT = "3GB"
# Tables are written in parallel, in no particular order: nothing reads rows in insertion order (exports, previews
# and checks order explicitly), and keeping it costs memory and time on the largest steps (BENCHMARKS.md).
PRESERVE_INSERTION_ORDER = False


def connect(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    p = Path(path)
    if not read_only:
        p.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {}
    if threads:
        config["threads"] = int(threads)
    config["memory_limit"] = memory_limit or DEFAULT_MEMORY_LIMIT
    config["preserve_insertion_order"] = PRESERVE_INSERTION_ORDER
    con = duckdb.connect(str(p), read_only=read_only, config=config)
    # Spill to a folder beside the warehouse when a step needs more than memory_limit.
    if not read_only:
        spill = p.parent / ".duckdb_tmp"
        con.execute(f"SET temp_directory = '{spill.as_posix()}'")
        ensure_schema(con)
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """The body as one transaction: committed at its end, rolled back on any exception (which is raised again),
    a failed commit included."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


@contextmanager
def connection(path: str | os.PathLike[str], **kwargs) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, **kwargs)
    try:
        yield con
    finally:
        con.close()
