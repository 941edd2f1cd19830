"""Read an input file into units (SPEC §2): a CSV is one unit, each XLSX sheet and each ZIP member is one.

Every value is read as text; column names are matched to the SPEC's case-insensitively after
trimming, and extra columns are kept (as JSON in `_extra`) but otherwise ignored.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import polars as pl

from revrec_pipelines.lib.filetypes import APPLY_ORDER, FILE_TYPES, FileType, type_of_name


class UnreadableFile(Exception):
    """The file (or one of its units) cannot be read at all; the message says why and, when known, where."""

    def __init__(self, message: str, *, unit: str | None = None, row_number: int | None = None, column: str | None = None):
        super().__init__(message)
        self.unit = unit
        self.row_number = row_number
        self.column = column


@dataclass
class Unit:
    file_type: FileType
    name: str  # "invoices.csv", "book.xlsx#invoices", "drop.zip/sales_orders.csv"
    frame: pl.DataFrame  # canonical SPEC column names, all text; "_extra" JSON text; "_row_number" in the file
    missing_columns: list[str]

    @property
    def order(self) -> tuple[int, str]:
        return (APPLY_ORDER.index(self.file_type.name), self.name)


def _canonical(ft: FileType, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    by_lower = {c.name.lower(): c.name for c in ft.columns}
    rename, extra = {}, []
    for col in frame.columns:
        if col == "_row_number":
            continue
        canon = by_lower.get(col.strip().lstrip("\ufeff").lower())
        if canon and canon not in rename.values():
            rename[col] = canon
        else:
            extra.append(col)
    frame = frame.rename(rename)
    missing = [c.name for c in ft.columns if c.required and c.name not in frame.columns]
    for c in ft.columns:
        if c.name not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(c.name))
    if extra:
        extra_json = pl.struct([pl.col(c).alias(c.strip()) for c in extra]).struct.json_encode()
    else:
        extra_json = pl.lit(None, dtype=pl.String)
    frame = frame.select(
        [pl.col(c.name).cast(pl.String) for c in ft.columns] + [extra_json.alias("_extra"), pl.col("_row_number")]
    )
    return frame, missing


def _column_at(data: bytes, offset: int) -> tuple[int, str | None]:
    """(row number, column name) of a byte offset, counting the header as row 1 (quotes ignored)."""
    row = data.count(b"\n", 0, offset) + 1
    line_start = data.rfind(b"\n", 0, offset) + 1
    field_index = data.count(b",", line_start, offset)
    header = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8", "replace")]), [])
    return row, (header[field_index].strip() if field_index < len(header) else None)


def _diagnose_csv(text: str, name: str) -> UnreadableFile:
    """Find the first row that breaks the CSV format (only called once polars has refused the file)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    record_start = 1
    try:
        header = next(reader)
        while True:
            record_start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if len(row) > len(header):
                return UnreadableFile(
                    f"{name} row {record_start} has {len(row)} fields but the header has {len(header)}: "
                    "a value probably contains an unquoted comma; put such values in double quotes",
                    unit=name, row_number=record_start,
                )
    except csv.Error as exc:
        return UnreadableFile(
            f"{name} row {record_start} is not well-formed CSV ({exc}): check for a quote that is opened but "
            "never closed", unit=name, row_number=record_start,
        )
    return UnreadableFile(f"{name} is not a well-formed CSV file", unit=name)


def _read_csv_bytes(data: bytes, name: str) -> pl.DataFrame:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")  # only to check; polars reads the bytes
    except UnicodeDecodeError as exc:
        row, column = _column_at(data, exc.start)
        raise UnreadableFile(
            f"{name} row {row} is not UTF-8 text (byte {data[exc.start]:#04x}): save the file as CSV UTF-8 and send it again",
            unit=name, row_number=row, column=column,
        ) from exc
    if not data or data.isspace():
        raise UnreadableFile(f"{name} is empty: it needs a header row", unit=name)
    try:
        frame = pl.read_csv(data, infer_schema=False, truncate_ragged_lines=False)
    except Exception as exc:  # polars raises several error types for malformed CSV
        raise _diagnose_csv(data.decode("utf-8"), name) from exc
    return frame.with_columns(_csv_row_numbers(data, frame.height))


def _csv_row_numbers(data: bytes, height: int) -> pl.Series:
    """The file row of each record polars read: the line it starts on (the header is row 1).

    Polars reads a blank line as a record with no values (the importer drops it, but the lines after it
    keep their numbers), and a quoted value may hold newlines, so a record can span several lines."""
    if _one_record_per_line(data, height):
        return pl.Series("_row_number", range(2, height + 2), dtype=pl.Int64)
    return pl.Series("_row_number", _record_start_lines(data, height), dtype=pl.Int64)


def _record_start_lines(data: bytes, height: int) -> list[int]:
    """The line each record starts on, found with the csv module (slow: only for files that need it)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    header = next(reader, None)
    while header == []:  # polars skips blank lines before the header
        header = next(reader, None)
    every, with_values = [], []  # the records' first lines, blank lines included and not
    start = reader.line_num + 1
    for row in reader:
        every.append(start)
        if row:
            with_values.append(start)
        start = reader.line_num + 1
    return (every if len(every) == height else with_values)[:height]


def _one_record_per_line(data: bytes, height: int) -> bool:
    """Whether each line after the header holds exactly one record (a blank line is a record with no values):
    no value is quoted (only quotes let a record span lines), or the header and `height` records fill
    exactly height + 1 lines (a record over several lines would need more). Lines end at \n, \r\n or
    \r, as for the csv module that numbers the records otherwise."""
    if data.startswith((b"\n", b"\r")):  # blank lines before the header, which polars skips
        return False
    if b'"' not in data:
        return True
    lone_cr = data.count(b"\r") - data.count(b"\r\n") if b"\r" in data else 0
    lines = data.count(b"\n") + lone_cr + (0 if data.endswith((b"\n", b"\r")) else 1)
    return lines == height + 1


def _cell_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        # Excel stores numbers as binary doubles; the shortest repr is the number the user typed.
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


def _read_xlsx(path: Path, display: str) -> list[tuple[str, pl.DataFrame]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise UnreadableFile(f"{display} is not a readable XLSX workbook: {exc}") from exc
    sheets = []
    try:
        for ws in wb.worksheets:
            rows = ws.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                continue
            names = [str(h).strip() if h is not None else f"column_{i + 1}" for i, h in enumerate(header)]
            body, numbers = [], []
            for n, r in enumerate(rows, start=2):  # the sheet's own row numbers, blank rows counted
                if any(v is not None for v in r):
                    body.append([_cell_text(v) for v in r])
                    numbers.append(n)
            frame = pl.DataFrame(body, schema=dict.fromkeys(names, pl.String), orient="row")
            sheets.append((ws.title, frame.with_columns(pl.Series("_row_number", numbers, dtype=pl.Int64))))
    finally:
        wb.close()
    return sheets


def read_units(path: Path, display_name: str) -> tuple[list[Unit], list[str]]:
    """Units of a file, in apply order, and the names of parts whose type could not be told."""
    lower = display_name.lower()
    parts: list[tuple[str, str, pl.DataFrame]] = []  # (type-bearing name, unit display name, frame)
    unknown: list[str] = []
    if lower.endswith(".csv"):
        parts.append((display_name, display_name, _read_csv_bytes(path.read_bytes(), display_name)))
    elif lower.endswith(".xlsx"):
        for sheet, frame in _read_xlsx(path, display_name):
            parts.append((sheet, f"{display_name}#{sheet}", frame))
    elif lower.endswith(".zip"):
        from revrec_pipelines.lib.zipsafe import safe_zip_members

        for member, data in safe_zip_members(path, display_name):
            shown = f"{display_name}/{member}"
            parts.append((member, shown, _read_csv_bytes(data, shown)))
    else:
        raise UnreadableFile(f"{display_name}: only .csv, .xlsx and .zip files are imported")
    units = []
    for type_name, shown, frame in parts:
        ft_name = type_of_name(type_name)
        if ft_name is None:
            unknown.append(shown)
            continue
        ft = FILE_TYPES[ft_name]
        canon, missing = _canonical(ft, frame)
        units.append(Unit(ft, shown, canon, missing))
    units.sort(key=lambda u: u.order)
    return units, unknown
