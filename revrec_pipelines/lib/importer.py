"""Import input files into the warehouse (SPEC §2 Import semantics).

One file is one batch, applied atomically: a CSV, a whole XLSX workbook or a whole ZIP. Every row is
validated; one bad row rejects the whole file, every problem is recorded in `import_errors`, and the
other files still go in. Rows are upserted by key keeping earlier versions; identical content changes
nothing; the incremental ledger skips files already imported.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from revrec_pipelines.lib import sql
from revrec_pipelines.lib.filetypes import APPLY_ORDER, FILE_TYPES, SQL_TYPES, FileType, type_of_name
from revrec_pipelines.lib.reader import Unit, UnreadableFile, read_units
from revrec_pipelines.lib.sources import FileSource, RemoteFile, SourceError
from revrec_pipelines.lib.validation import ERROR_COLUMNS, normalized, row_errors
from revrec_pipelines.lib.warehouse import transaction

log = logging.getLogger(__name__)
REFERENCE_CHECKS = {"sales_orders", "invoices", "usage", "commissions", "exchange_rates"}
MAX_ERRORS_SHOWN = 20


@dataclass
class FileOutcome:
    path: str
    status: str  # applied | unchanged | rejected | skipped
    batch_id: int | None = None
    rows_read: int = 0
    rows_new: int = 0
    rows_changed: int = 0
    rows_unchanged: int = 0
    units: int = 0
    errors: pl.DataFrame | None = None  # unit, row_number, column_name, value, reason
    message: str = ""

    @property
    def error_count(self) -> int:
        return 0 if self.errors is None else self.errors.height


@dataclass
class ImportReport:
    source: str
    outcomes: list[FileOutcome] = field(default_factory=list)

    @property
    def rejected(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "rejected"]

    @property
    def applied(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "applied"]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def failure_message(self) -> str:
        """A message a person can act on: which files, which rows, what is wrong, what to do."""
        lines = [f"{len(self.rejected)} file(s) rejected from {self.source}; nothing of them was applied:"]
        for o in self.rejected:
            lines.append(f"- {o.path} (batch {o.batch_id}): {o.message}")
            if o.errors is not None:
                for r in o.errors.head(MAX_ERRORS_SHOWN).iter_rows(named=True):
                    where = f"row {r['row_number']}" if r["row_number"] is not None else "file"
                    col = f", column {r['column_name']}" if r["column_name"] else ""
                    val = f" value {r['value']!r}" if r["value"] is not None else ""
                    lines.append(f"    {r['unit']} {where}{col}:{val} {r['reason']}")
                if o.errors.height > MAX_ERRORS_SHOWN:
                    lines.append(f"    … and {o.errors.height - MAX_ERRORS_SHOWN} more (table import_errors, batch {o.batch_id})")
        lines.append("Correct the files and drop them again: a file with new content is imported as a new batch.")
        return "\n".join(lines)


def failure_message_for_run(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The failure message of an import run (as ImportReport.failure_message), rebuilt from the warehouse."""
    rejected = con.execute(
        "SELECT batch_id, source, path, message FROM import_batches WHERE run_id = ? AND status = 'rejected' ORDER BY batch_id",
        [run_id],
    ).fetchall()
    if not rejected:
        return None
    report = ImportReport(rejected[0][1])
    for batch_id, _source, path, message in rejected:
        errors = con.sql(
            f"SELECT unit, row_number, column_name, value, reason FROM import_errors WHERE batch_id = {int(batch_id)} "
            "ORDER BY row_number NULLS FIRST, column_name"
        ).pl()
        report.outcomes.append(FileOutcome(path, "rejected", batch_id, errors=errors, message=message or ""))
    return report.failure_message()


def _stage_sql(ft: FileType) -> str:
    """The unit's rows, typed as in the warehouse: a view over the registered frame (nothing is copied)."""
    casts = [f"CAST({c.name} AS {SQL_TYPES[c.kind]}) AS {c.name}" for c in ft.columns]
    if "IsActive" in [c.name for c in ft.columns]:
        casts = [x if not x.endswith(" AS IsActive") else "coalesce(CAST(IsActive AS BOOLEAN), true) AS IsActive" for x in casts]
    return f"CREATE OR REPLACE TEMP VIEW stage AS SELECT {', '.join(casts)}, _extra, _row_number FROM unit_frame"


def _values_differ(ft: FileType, a: str, b: str) -> str:
    """Whether two rows' typed values differ in any column (NULL equal to NULL). Compared directly rather than
    through a stored hash of each row: exact, and an import no longer hashes every row it writes."""
    return " OR ".join(f"{a}.{c.name} IS DISTINCT FROM {b}.{c.name}" for c in ft.columns)


def _key_join(ft: FileType, a: str, b: str) -> str:
    return " AND ".join(f"{a}.{k} IS NOT DISTINCT FROM {b}.{k}" for k in ft.key)


def _unit_error(unit: str, reason: str, column: str | None = None, row_number: int | None = None) -> pl.DataFrame:
    return pl.DataFrame(
        {"unit": [unit], "row_number": [row_number], "column_name": [column], "value": [None], "reason": [reason]},
        schema={"unit": pl.String, **ERROR_COLUMNS},
    )


def _with_unit(errors: pl.DataFrame, unit: str) -> pl.DataFrame:
    return errors.cast(ERROR_COLUMNS).select(pl.lit(unit).alias("unit"), *ERROR_COLUMNS)


def apply_unit(con: duckdb.DuckDBPyConnection, unit: Unit, batch_id: int, source_kind: str = "file") -> tuple[pl.DataFrame, dict[str, int]]:
    """Validate one unit and, if it is clean, upsert it. Returns (errors, counts). Runs inside the caller's transaction."""
    ft = unit.file_type
    if unit.missing_columns:
        return pl.concat([
            _unit_error(unit.name, "required column is missing from the header row", column=c, row_number=1)
            for c in unit.missing_columns
        ]), {}
    if unit.frame.height == 0:
        return _with_unit(pl.DataFrame(schema=ERROR_COLUMNS), unit.name), {"read": 0, "new": 0, "changed": 0, "unchanged": 0}
    values = [c.name for c in ft.columns]
    frame = unit.frame.lazy().select(*normalized(ft), pl.col("_extra"), pl.col("_row_number").cast(pl.Int64)).collect()
    # Rows with no value at all (",,,," and blank lines, blank spreadsheet rows) are not records; most files
    # have none, and filtering would copy every value.
    is_record = frame.select(pl.any_horizontal([pl.col(c).is_not_null() for c in values])).to_series()
    if not is_record.all():
        frame = frame.filter(is_record)
    errors = row_errors(ft, frame.drop("_extra"))
    if errors.height:
        return _with_unit(errors, unit.name), {}
    # Arrow string views, as polars holds its text: registered without copying (the default, large strings,
    # copies every value: ~0.8 s of a million-line import)
    con.register("unit_frame", frame.to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        con.execute(_stage_sql(ft))
        if ft.name in REFERENCE_CHECKS:
            ref = con.sql(sql.sql_text(f"ingest/checks_{ft.name}")).pl()
            if ref.height:
                return _with_unit(ref.sort("row_number"), unit.name), {}
        upsert = sql.render(
            "ingest/upsert",
            table=ft.table,
            key_join_c=_key_join(ft, "c", "s"),
            key_join_t=_key_join(ft, "t", "s"),
            values_differ=_values_differ(ft, "t", "s"),
            columns=", ".join(values),
            batch_id=batch_id,
            source_kind=source_kind,
        )
        # Its two statements: the current versions superseded (changed rows), then the rows written (new + changed).
        changed, written = (con.execute(stmt).fetchall()[0][0] for stmt in sql.statements(upsert))
    finally:
        con.execute("DROP VIEW IF EXISTS stage")
        con.unregister("unit_frame")
    return pl.DataFrame(schema={"unit": pl.String, **ERROR_COLUMNS}), {
        "read": frame.height,
        "new": written - changed,
        "changed": changed,
        "unchanged": frame.height - written,
    }


def _ledger_hit(con, source: str, f: RemoteFile) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM import_ledger WHERE source = ? AND path = ? AND size = ? AND version_tag = ?",
            [source, f.path, f.size, f.version_tag],
        ).fetchall()[0][0]
    )


def _last_sha(con, source: str, path: str) -> tuple[str, str] | None:
    row = con.execute(
        "SELECT sha256, status FROM import_ledger WHERE source = ? AND path = ? "
        "ORDER BY recorded_at DESC, batch_id DESC LIMIT 1",
        [source, path],
    ).fetchall()
    return (row[0][0], row[0][1]) if row else None


def import_file(
    con: duckdb.DuckDBPyConnection,
    source_uri: str,
    remote: RemoteFile,
    local: Path,
    sha256: str,
    run_id: str | None = None,
) -> FileOutcome:
    """Apply one downloaded file as one batch (atomic), recording batch, ledger and errors."""
    started = datetime.now()
    batch_id = con.execute("SELECT nextval('batch_id_seq')").fetchall()[0][0]
    outcome = FileOutcome(remote.path, "applied", batch_id)
    try:
        units, unknown = read_units(local, remote.path)
        errors = [_unit_error(u, "the name does not start with a known file type (" + ", ".join(FILE_TYPES) + ")") for u in unknown]
    except UnreadableFile as exc:
        units, errors = [], [_unit_error(exc.unit or remote.path, str(exc), exc.column, exc.row_number)]
    except SourceError as exc:
        units, errors = [], [_unit_error(remote.path, str(exc))]
    outcome.units = len(units)
    if not units and not errors:
        errors.append(_unit_error(remote.path, "contains no data to import"))
    if not errors:
        con.execute("BEGIN TRANSACTION")
        try:
            for unit in units:
                unit_errors, counts = apply_unit(con, unit, batch_id)
                if unit_errors.height:
                    errors.append(unit_errors)
                    continue
                outcome.rows_read += counts.get("read", 0)
                outcome.rows_new += counts.get("new", 0)
                outcome.rows_changed += counts.get("changed", 0)
                outcome.rows_unchanged += counts.get("unchanged", 0)
            if errors:
                con.execute("ROLLBACK")
            else:
                outcome.status = "applied" if (outcome.rows_new + outcome.rows_changed) else "unchanged"
                _record(con, source_uri, remote, sha256, outcome, started, run_id)
                con.execute("COMMIT")
                return outcome
        except BaseException:
            con.execute("ROLLBACK")
            raise
    outcome.status = "rejected"
    outcome.errors = pl.concat(errors)
    outcome.rows_new = outcome.rows_changed = outcome.rows_unchanged = 0
    n = outcome.errors.height
    outcome.message = f"{n} problem{'s' if n != 1 else ''} found; the whole file was rejected"
    with transaction(con):
        con.register("errors_frame", outcome.errors.to_arrow())
        con.execute(
            "INSERT INTO import_errors (batch_id, source, path, unit, row_number, column_name, value, reason) "
            "SELECT ?, ?, ?, unit, row_number, column_name, value, reason FROM errors_frame",
            [batch_id, source_uri, remote.path],
        )
        con.unregister("errors_frame")
        _record(con, source_uri, remote, sha256, outcome, started, run_id)
    return outcome


def _record(con, source_uri, remote: RemoteFile, sha256, o: FileOutcome, started, run_id) -> None:
    con.execute(
        "INSERT INTO import_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [o.batch_id, run_id, source_uri, remote.path, sha256, o.status, o.units, o.rows_read, o.rows_new,
         o.rows_changed, o.rows_unchanged, o.error_count, o.message or None, started, datetime.now()],
    )
    con.execute(
        "INSERT INTO import_ledger (source, path, size, version_tag, sha256, batch_id, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [source_uri, remote.path, remote.size, remote.version_tag, sha256, o.batch_id, o.status],
    )


def _container_order(local: Path, name: str) -> tuple[int, str]:
    """Files are applied in the order of the first unit type they hold, then by name (SPEC §2 Order)."""
    t = type_of_name(name) if name.lower().endswith(".csv") else None
    if t is not None:
        return (APPLY_ORDER.index(t), name)
    try:
        units, _ = read_units(local, name)
        if units:
            return (min(u.order[0] for u in units), name)
    except (UnreadableFile, SourceError):
        pass
    return (len(APPLY_ORDER), name)


def import_from_source(
    con: duckdb.DuckDBPyConnection,
    source: FileSource,
    *,
    incremental: bool = True,
    run_id: str | None = None,
    progress: Callable[[str], None] = log.info,
) -> ImportReport:
    report = ImportReport(source.uri)
    listed = source.list_files()
    progress(f"{len(listed)} input file(s) listed at {source.uri}")
    for note in getattr(source, "skipped", []):  # e.g. an SFTP file still being written: next run
        progress(f"{note.path}: not imported this time — {note.reason}")
        report.outcomes.append(FileOutcome(note.path, "skipped", message=note.reason))
    todo = [f for f in listed if not (incremental and _ledger_hit(con, source.uri, f))]
    for f in listed:
        if f not in todo:
            report.outcomes.append(FileOutcome(f.path, "skipped", message="already imported (incremental ledger)"))
    with tempfile.TemporaryDirectory(prefix="revrec-import-") as tmp:
        downloaded = []
        for i, f in enumerate(todo):
            local = Path(tmp) / f"{i:06d}-{Path(f.path).name}"
            sha = source.download(f, local)
            previous = _last_sha(con, source.uri, f.path)
            if incremental and previous and previous[0] == sha and previous[1] != "rejected":
                # Same content under a new timestamp: remember the new identity, apply nothing.
                con.execute(
                    "INSERT INTO import_ledger (source, path, size, version_tag, sha256, batch_id, status) "
                    "SELECT source, path, ?, ?, sha256, batch_id, status FROM import_ledger "
                    "WHERE source = ? AND path = ? ORDER BY recorded_at DESC LIMIT 1",
                    [f.size, f.version_tag, source.uri, f.path],
                )
                report.outcomes.append(FileOutcome(f.path, "skipped", message="content identical to an earlier import"))
                continue
            downloaded.append((f, local, sha))
        downloaded.sort(key=lambda t: _container_order(t[1], t[0].path))
        for n, (f, local, sha) in enumerate(downloaded, 1):
            outcome = import_file(con, source.uri, f, local, sha, run_id)
            report.outcomes.append(outcome)
            progress(
                f"[{n}/{len(downloaded)}] {f.path}: {outcome.status}"
                + (f" ({outcome.rows_new} new, {outcome.rows_changed} changed, {outcome.rows_unchanged} unchanged rows)"
                   if outcome.status != "rejected" else f" ({outcome.message})")
            )
    return report
