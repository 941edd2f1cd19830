"""Input files for import tests: the worked example's first batch, and ways to edit and package it.

`BATCH1` is a verbatim copy of `shared/examples/worked-example/batch1/` (test_import.py checks that it
still matches when the shared folder is present), kept here so the tests run from the repository alone.
Row numbers are those of the file as a person sees it in a spreadsheet: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import duckdb

from revrec_pipelines.lib.filetypes import FILE_TYPES, Column

BATCH1: dict[str, str] = {
    "customers": """\
Customer_Id,Customer_Name,Subsidiary_Id,Email,Country
C100,Northwind Traders,SUB-US,ap@northwind.example,US
C200,Contoso GmbH,SUB-DE,billing@contoso.example,DE
""",
    "products": """\
Product_Id,Product_Code,Product_Name,Revenue_Rule,SSP,Class,Location,Department
P-SUB,PLAT-ANNUAL,Platform subscription,ratable_daily,12000.00,SaaS,NYC,Sales
P-SETUP,ONBOARD,Onboarding,point_in_time,3000.00,Services,NYC,Services
P-API,API-CALLS,API calls,usage,,Usage,NYC,Sales
P-SEAT,SEAT-MONTHLY,Seats,ratable_monthly,,SaaS,BER,Sales
""",
    "account_mappings": """\
Account_Type,Account_Id,Account_Name,Subsidiary_Id
Contra Revenue,4900,Billings contra revenue,
Revenue,4000,Subscription revenue,
Deferred Revenue,2400,Deferred revenue,
Unbilled Receivable,1250,Unbilled receivable,
Deferred Expense,1400,Deferred commissions,
Expense Clearing,2150,Commissions clearing,
Expense Recognized,6100,Commission expense,
Revenue,4001,Subscription revenue DE,SUB-DE
Deferred Revenue,2401,Deferred revenue DE,SUB-DE
""",
    "exchange_rates": """\
From_Currency,To_Currency,Rate_Date,Rate
EUR,USD,2025-01-01,1.05
EUR,USD,2025-02-01,1.08
""",
    "sales_orders": """\
Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,Service_Start_Date,Service_End_Date,Currency,List_Price,Subsidiary_Id,IsActive
SO-1,SO-1-1,C100,P-SUB,2025-01-10,1,10800.00,2025-01-15,2026-01-14,USD,12000.00,,true
SO-1,SO-1-2,C100,P-SETUP,2025-01-10,1,1200.00,2025-01-15,2025-01-31,USD,3000.00,,true
SO-1,SO-1-3,C100,P-API,2025-01-10,1,0,2025-01-15,2026-01-14,USD,,,true
SO-2,SO-2-1,C200,P-SEAT,2025-01-25,2,2500.00,2025-02-01,2025-07-31,EUR,,,true
""",
    "invoices": """\
Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Service_Start_Date,Service_End_Date
INV-1001,1,2025-01-15,10800.00,USD,SO-1,SO-1-1,,,,
INV-1001,2,2025-01-15,1200.00,USD,SO-1,SO-1-2,,,,
INV-1002,1,2025-02-01,350.00,USD,SO-1,SO-1-3,,,,
INV-2001,1,2025-02-01,2500.00,EUR,SO-2,SO-2-1,,,,
INV-3001,1,2025-03-05,900.00,USD,,,C100,P-SETUP,2025-03-05,2025-03-05
""",
    "usage": """\
Sales_Order_Item_Id,Usage_Date,Amount
SO-1-3,2025-01-20,200.00
SO-1-3,2025-01-28,150.00
SO-1-3,2025-02-10,500.00
""",
    "commissions": """\
Sales_Order_Item_Id,Commission_Date,Amount
SO-1-1,2025-02-05,1080.00
""",
}

# Not in the worked example; completes the nine SPEC types for tests that need every one.
SUBSIDIARIES = """\
Subsidiary_Id,Subsidiary_Name,Rillet_Subsidiary_Id,Intacct_Location_Id
SUB-US,Northwind US,rs_us,100
SUB-DE,Contoso Deutschland,rs_de,200
"""

# Rows of each type in BATCH1 (the header not counted).
BATCH1_ROWS = {t: text.count("\n") - 1 for t, text in BATCH1.items()}


def batch1_files() -> dict[str, str]:
    """BATCH1 as files of a drop: `{"customers.csv": text, ...}`."""
    return {f"{t}.csv": text for t, text in BATCH1.items()}


def table(file_type: str) -> list[list[str]]:
    """The rows of a BATCH1 file, header first: `table(t)[n - 1]` is row n of the file."""
    return [list(r) for r in csv.reader(io.StringIO(BATCH1[file_type]))]


def to_csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def edited(
    file_type: str,
    cells: Mapping[tuple[int, str], str] | None = None,
    *,
    rows: list[int] | None = None,
) -> str:
    """BATCH1's `file_type` CSV with `cells[(row, column)]` set, rows numbered as in the result (header = 1).

    `rows` keeps only those data rows of the original (by their original row numbers), in that order.
    A column not in the file is appended to the header, empty on the other rows.
    """
    grid = table(file_type)
    if rows is not None:
        grid = [grid[0]] + [list(grid[n - 1]) for n in rows]
    for (row, column), value in (cells or {}).items():
        if column not in grid[0]:
            grid[0].append(column)
            for r in grid[1:]:
                r.append("")
        grid[row - 1][grid[0].index(column)] = value
    return to_csv(grid)


def write_files(folder: Path, files: Mapping[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content.encode("utf-8") if isinstance(content, str) else content
        (folder / name).write_bytes(data)
    return folder


def write_zip(path: Path, members: Mapping[str, str | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content.encode("utf-8") if isinstance(content, str) else content)
    return path


def _typed_cell(column: Column | None, text: str, typed: bool) -> object:
    """A cell as a spreadsheet user types it: dates as dates, numbers as numbers, blanks as blanks."""
    if text == "" or not typed:
        return text or None
    kind = column.kind if column is not None else "text"
    try:
        if kind == "date":
            return date.fromisoformat(text)
        if kind in ("money", "unit_price", "quantity", "rate"):
            number = float(text)
            return int(number) if number.is_integer() else number
    except ValueError:
        return text  # not a date or number: typed into the cell as text, as a user would
    if text.isdigit() and not text.startswith("0"):
        return int(text)  # an id such as Invoice_Line or Account_Id typed into a cell becomes a number
    return text


def write_xlsx(path: Path, sheets: Mapping[str, str | list[list[str]]], *, typed: bool = True) -> Path:
    """A workbook with one sheet per entry (CSV text or rows, header first), written by xlsxwriter.

    With `typed`, dates become real date cells and amounts numeric cells, as Excel users produce them.
    Rows that are entirely empty are left blank in the sheet.
    """
    import xlsxwriter

    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = xlsxwriter.Workbook(str(path))
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    try:
        for sheet_name, content in sheets.items():
            grid = [list(r) for r in csv.reader(io.StringIO(content))] if isinstance(content, str) else content
            ft = FILE_TYPES.get(sheet_name.lower())
            by_name = {c.name.lower(): c for c in ft.columns} if ft else {}
            columns = [by_name.get(h.strip().lower()) for h in grid[0]]
            ws = workbook.add_worksheet(sheet_name)
            ws.write_row(0, 0, grid[0])
            for r, row in enumerate(grid[1:], start=1):
                for c, text in enumerate(row):
                    value = _typed_cell(columns[c], text, typed)
                    if value is None:
                        continue
                    if isinstance(value, date):
                        ws.write_datetime(r, c, value, date_format)
                    elif isinstance(value, int | float):
                        ws.write_number(r, c, value)
                    else:
                        ws.write_string(r, c, value)
    finally:
        workbook.close()
    return path


def raw_tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every row of every raw_<type> table, every column, in a stable order: the warehouse's input state."""
    return {ft.table: con.execute(f"SELECT * FROM {ft.table} ORDER BY ALL").fetchall() for ft in FILE_TYPES.values()}


def current_rows(con: duckdb.DuckDBPyConnection, file_type: str) -> list[tuple]:
    """The current rows of a type, SPEC columns only (no batch bookkeeping), in a stable order."""
    cols = ", ".join(c.name for c in FILE_TYPES[file_type].columns)
    return con.execute(f"SELECT {cols} FROM {file_type} ORDER BY ALL").fetchall()
