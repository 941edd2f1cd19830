"""SPEC §2 import semantics, end to end: files in a local folder → importer → DuckDB warehouse.

Bad files are the worked example's CSVs with one value edited; the row numbers asserted are the ones
edited, counted as a person sees them in a spreadsheet (the header is row 1). "The warehouse is
unchanged" means every raw_<type> table, every column, is identical before and after the run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pandera.polars as pandera
import polars as pl
import pytest

from revrec_pipelines.lib import importer, reader, sources, validation, warehouse
from revrec_pipelines.lib.filetypes import (
    APPLY_ORDER,
    BOOL,
    CURRENCY,
    DATE,
    FILE_TYPES,
    MONEY,
    QUANTITY,
    RATE,
    RULE,
    UNIT_PRICE,
)
from revrec_pipelines_tests import inputs
from revrec_pipelines_tests.inputs import BATCH1, BATCH1_ROWS, edited
from revrec_pipelines_tests.support import require

WORKED_EXAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "examples" / "worked-example"
ANY = object()  # an expectation that is not checked
JARGON = ("Schema", "polars", "Traceback", "str_matches", "isin(", "not_nullable", "Error:")


# ------------------------------------------------------------------------------------------------
# fixtures and helpers


@dataclass(frozen=True)
class Baseline:
    db: Path
    current: dict[str, list[tuple]]  # current rows of each type after importing BATCH1
    batch_of: dict[str, int]  # file name → batch id


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """A warehouse holding the worked example's batch 1, built once and copied for each test."""
    root = tmp_path_factory.mktemp("baseline")
    inbox = inputs.write_files(root / "inbox", inputs.batch1_files())
    con = warehouse.connect(root / "w.duckdb")
    try:
        report = importer.import_from_source(con, sources.LocalFolderSource(inbox))
        assert not report.rejected, report.failure_message()
        current = {t: inputs.current_rows(con, t) for t in BATCH1}
        batch_of = {o.path: o.batch_id for o in report.outcomes}
    finally:
        con.close()
    return Baseline(root / "w.duckdb", current, batch_of)


@pytest.fixture
def loaded(baseline: Baseline, tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private copy of the baseline warehouse."""
    shutil.copyfile(baseline.db, tmp_path / "w.duckdb")
    con = warehouse.connect(tmp_path / "w.duckdb")
    yield con
    con.close()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = warehouse.connect(tmp_path / "empty.duckdb")
    yield con
    con.close()


def run(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    files: dict[str, str | bytes] | None = None,
    *,
    incremental: bool = True,
) -> importer.ImportReport:
    """Drop `files` into `folder` (if given) and import everything the folder holds."""
    if files:
        inputs.write_files(folder, files)
    return importer.import_from_source(con, sources.LocalFolderSource(folder), incremental=incremental)


def outcome(report: importer.ImportReport, path: str) -> importer.FileOutcome:
    (found,) = [o for o in report.outcomes if o.path == path]
    return found


def recorded_errors(con: duckdb.DuckDBPyConnection, batch_id: int) -> list[dict]:
    cur = con.execute(
        "SELECT path, unit, row_number, column_name, value, reason FROM import_errors WHERE batch_id = ? "
        "ORDER BY row_number NULLS FIRST, column_name, reason",
        [batch_id],
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def batch_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM import_batches").fetchall()[0][0]


def batch_status(con: duckdb.DuckDBPyConnection, batch_id: int) -> str:
    return con.execute("SELECT status FROM import_batches WHERE batch_id = ?", [batch_id]).fetchall()[0][0]


def customer_name(con: duckdb.DuckDBPyConnection, customer_id: str) -> str:
    return con.execute("SELECT Customer_Name FROM customers WHERE Customer_Id = ?", [customer_id]).fetchall()[0][0]


def assert_plain_words(reason: str) -> None:
    assert reason.strip(), "a problem needs a reason"
    for word in JARGON:
        assert word not in reason, f"reason is not plain words ({word!r}): {reason}"


def assert_rejected_cleanly(
    con: duckdb.DuckDBPyConnection,
    report: importer.ImportReport,
    before: dict[str, list[tuple]],
    path: str,
    *,
    unit: str | None = None,
    row: int | None | object = ANY,
    column: str | None | object = ANY,
    value: str | None | object = ANY,
    reason_has: tuple[str, ...] = (),
) -> dict:
    """The file was rejected, nothing of it applied, and the problem recorded where a person can act on it."""
    rejected = outcome(report, path)
    assert rejected.status == "rejected"
    assert rejected in report.rejected
    assert inputs.raw_tables(con) == before, "a rejected file changed the warehouse"
    assert batch_status(con, rejected.batch_id) == "rejected"

    errors = recorded_errors(con, rejected.batch_id)
    assert errors, "a rejected file must leave its problems in import_errors"
    assert {e["path"] for e in errors} == {path}
    # What the run shows is what the warehouse keeps.
    fields = ("unit", "row_number", "column_name", "value", "reason")
    shown = {tuple(r[f] for f in fields) for r in rejected.errors.to_dicts()}
    assert shown == {tuple(e[f] for f in fields) for e in errors}

    def matches(e: dict) -> bool:
        return (
            e["unit"] == (unit or path)
            and (row is ANY or e["row_number"] == row)
            and (column is ANY or e["column_name"] == column)
        )

    candidates = [e for e in errors if matches(e)]
    assert candidates, f"no error at unit {unit or path}, row {row}, column {column}; recorded: {errors}"
    hit = candidates[0]
    if value is None:
        assert hit["value"] is None or not hit["value"].strip(), hit
    elif value is not ANY:
        assert hit["value"] == value, hit
    for words in reason_has:
        assert words.lower() in hit["reason"].lower(), hit
    assert_plain_words(hit["reason"])

    message = report.failure_message()
    assert path in message
    if isinstance(row, int):
        assert f"row {row}" in message
    if isinstance(column, str):
        assert column in message
    return hit


# ------------------------------------------------------------------------------------------------
# the fixture itself


def test_embedded_batch1_is_the_worked_example() -> None:
    require((WORKED_EXAMPLE / "batch1").is_dir(), "shared/examples/worked-example")
    for file_type, text in BATCH1.items():
        assert (WORKED_EXAMPLE / "batch1" / f"{file_type}.csv").read_text(encoding="utf-8") == text, file_type


# ------------------------------------------------------------------------------------------------
# a valid drop


def test_valid_drop_applies_every_type_in_dependency_order(
    empty: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # Listed alphabetically, account_mappings, commissions and invoices would come before the customers,
    # products and order lines they need: only the SPEC order lets this drop go in.
    files = {**inputs.batch1_files(), "subsidiaries.csv": inputs.SUBSIDIARIES}
    report = run(empty, tmp_path / "inbox", files)

    assert not report.rejected, report.failure_message()
    applied_types = [o.path.removesuffix(".csv") for o in report.outcomes]
    assert applied_types == list(APPLY_ORDER)
    batch_ids = [o.batch_id for o in report.outcomes]
    assert batch_ids == sorted(batch_ids) and len(set(batch_ids)) == len(batch_ids)

    expected_rows = {**BATCH1_ROWS, "subsidiaries": 2}
    for o in report.outcomes:
        file_type = o.path.removesuffix(".csv")
        n = expected_rows[file_type]
        assert (o.status, o.rows_new, o.rows_changed, o.rows_unchanged, o.error_count) == ("applied", n, 0, 0, 0)
        table_rows = empty.execute(
            "SELECT count(*), count(DISTINCT _batch_id), min(_batch_id), bool_and(_is_current) "
            f"FROM raw_{file_type}"
        ).fetchall()[0]
        assert table_rows == (n, 1, o.batch_id, True), file_type
        assert empty.execute(f"SELECT count(*) FROM {file_type}").fetchall()[0][0] == expected_rows[file_type]

    batches = empty.execute(
        "SELECT path, status, units, rows_read, rows_new, error_count FROM import_batches ORDER BY batch_id"
    ).fetchall()
    assert batches == [(f"{t}.csv", "applied", 1, expected_rows[t], expected_rows[t], 0) for t in APPLY_ORDER]
    assert empty.execute("SELECT count(*) FROM import_errors").fetchall()[0][0] == 0

    # Typed values, and the row each came from (header = row 1).
    assert empty.execute(
        "SELECT Sales_Order_Item_Id, Order_Date, Quantity, Sale_Price, Currency, IsActive, _row_number "
        "FROM sales_orders WHERE Sales_Order_Item_Id = 'SO-2-1'"
    ).fetchall() == [("SO-2-1", date(2025, 1, 25), Decimal("2"), Decimal("2500"), "EUR", True, 5)]
    assert empty.execute("SELECT _row_number FROM usage ORDER BY ALL").fetchall() == [(2,), (3,), (4,)]
    # The invoice-as-contract line and invoices of order lines that arrived in the same drop.
    assert empty.execute(
        "SELECT Invoice_Number, Sales_Order_Item_Id, Customer_Id, Product_Id, Billing_Amount "
        "FROM invoices ORDER BY ALL"
    ).fetchall() == [
        ("INV-1001", "SO-1-1", None, None, Decimal("10800.00")),
        ("INV-1001", "SO-1-2", None, None, Decimal("1200.00")),
        ("INV-1002", "SO-1-3", None, None, Decimal("350.00")),
        ("INV-2001", "SO-2-1", None, None, Decimal("2500.00")),
        ("INV-3001", None, "C100", "P-SETUP", Decimal("900.00")),
    ]


def test_units_of_one_type_apply_in_name_order(empty: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    files = {
        "customers.csv": BATCH1["customers"],
        "products.csv": BATCH1["products"],
        "sales_orders_2025-01.csv": BATCH1["sales_orders"],
        "sales_orders_2025-02.csv": edited("sales_orders", {(2, "Sale_Price"): "11400.00"}, rows=[2]),
    }
    report = run(empty, tmp_path / "inbox", files)
    assert not report.rejected, report.failure_message()
    january, february = outcome(report, "sales_orders_2025-01.csv"), outcome(report, "sales_orders_2025-02.csv")
    assert january.batch_id < february.batch_id
    assert (february.rows_new, february.rows_changed) == (0, 1)
    assert empty.execute(
        "SELECT Sale_Price, _batch_id FROM sales_orders WHERE Sales_Order_Item_Id = 'SO-1-1'"
    ).fetchall() == [(Decimal("11400.000000"), february.batch_id)]


# ------------------------------------------------------------------------------------------------
# one bad row rejects the whole file: one case per validation rule


@dataclass(frozen=True)
class BadFile:
    name: str
    content: str | bytes
    row: int | None | object
    column: str | None | object
    value: str | None | object
    reason_has: tuple[str, ...]


def _not_utf8() -> bytes:
    text = edited("customers", {(3, "Customer_Name"): "Contoso GmbH"}).encode("utf-8")
    return text.replace(b"Contoso GmbH", b"M\xfcller GmbH")  # Latin-1 ü in row 3


def _ragged_row() -> str:
    grid = inputs.table("products")
    grid[2].append("Extra")  # row 3 has one value more than the header has columns
    return "\n".join(",".join(r) for r in grid) + "\n"


def _unclosed_quote() -> str:
    return BATCH1["products"].replace("P-SETUP,ONBOARD,Onboarding,", 'P-SETUP,ONBOARD,"Onboarding,')  # row 3


BAD_FILES = {
    # dates
    "date-not-iso": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Order_Date"): "10/01/2025"}),
                            3, "Order_Date", "10/01/2025", ("YYYY-MM-DD",)),
    "date-impossible": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Order_Date"): "2025-02-30"}),
                               3, "Order_Date", "2025-02-30", ("date",)),
    "date-not-a-leap-year": BadFile("invoices.csv", edited("invoices", {(4, "Billing_Date"): "2025-02-29"}),
                                    4, "Billing_Date", "2025-02-29", ("date",)),
    "date-not-zero-padded": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Order_Date"): "2025-1-5"}),
                                    3, "Order_Date", "2025-1-5", ("YYYY-MM-DD",)),
    "service-end-before-start": BadFile(
        "sales_orders.csv", edited("sales_orders", {(3, "Service_End_Date"): "2025-01-14"}),
        3, "Service_End_Date", "2025-01-14", ("before", "Service_Start_Date")),
    "invoice-service-end-before-start": BadFile(
        "invoices.csv", edited("invoices", {(6, "Service_End_Date"): "2025-03-04"}),
        6, "Service_End_Date", "2025-03-04", ("before", "Service_Start_Date")),
    # quantities and prices
    "quantity-zero": BadFile("sales_orders.csv", edited("sales_orders", {(2, "Quantity"): "0"}),
                             2, "Quantity", "0", ("greater than 0",)),
    "quantity-zero-with-decimals": BadFile("sales_orders.csv", edited("sales_orders", {(2, "Quantity"): "0.000"}),
                                           2, "Quantity", "0.000", ("greater than 0",)),
    "quantity-negative": BadFile("sales_orders.csv", edited("sales_orders", {(2, "Quantity"): "-1"}),
                                 2, "Quantity", "-1", ("greater than 0",)),
    "sale-price-negative": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Sale_Price"): "-1200.00"}),
                                   3, "Sale_Price", "-1200.00", ("0 or more",)),
    "list-price-negative": BadFile("sales_orders.csv", edited("sales_orders", {(3, "List_Price"): "-3000.00"}),
                                   3, "List_Price", "-3000.00", ("0 or more",)),
    "ssp-negative": BadFile("products.csv", edited("products", {(3, "SSP"): "-3000.00"}),
                            3, "SSP", "-3000.00", ("0 or more",)),
    "billing-amount-3-decimals": BadFile("invoices.csv", edited("invoices", {(3, "Billing_Amount"): "1200.001"}),
                                         3, "Billing_Amount", "1200.001", ("2 decimals",)),
    "usage-amount-3-decimals": BadFile("usage.csv", edited("usage", {(4, "Amount"): "500.005"}),
                                       4, "Amount", "500.005", ("2 decimals",)),
    "commission-amount-3-decimals": BadFile("commissions.csv", edited("commissions", {(2, "Amount"): "1080.125"}),
                                            2, "Amount", "1080.125", ("2 decimals",)),
    "unit-price-7-decimals": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Sale_Price"): "1200.0000001"}),
                                     3, "Sale_Price", "1200.0000001", ("6 decimals",)),
    "quantity-7-decimals": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Quantity"): "1.0000001"}),
                                   3, "Quantity", "1.0000001", ("6 decimals",)),
    "exchange-rate-zero": BadFile("exchange_rates.csv", edited("exchange_rates", {(3, "Rate"): "0"}),
                                  3, "Rate", "0", ("greater than 0",)),
    # codes
    "currency-not-iso-order": BadFile("sales_orders.csv", edited("sales_orders", {(5, "Currency"): "EUX"}),
                                      5, "Currency", "EUX", ("ISO 4217",)),
    "currency-not-iso-invoice": BadFile("invoices.csv", edited("invoices", {(5, "Currency"): "EURO"}),
                                        5, "Currency", "EURO", ("ISO 4217",)),
    "currency-not-iso-rate": BadFile("exchange_rates.csv", edited("exchange_rates", {(2, "From_Currency"): "ABC"}),
                                     2, "From_Currency", "ABC", ("ISO 4217",)),
    "revenue-rule-unknown-product": BadFile(
        "products.csv", edited("products", {(2, "Revenue_Rule"): "ratable_weekly"}),
        2, "Revenue_Rule", "ratable_weekly", ("ratable_daily", "point_in_time")),
    "revenue-rule-unknown-order-line": BadFile(
        "sales_orders.csv", edited("sales_orders", {(3, "Revenue_Rule"): "upfront"}),
        3, "Revenue_Rule", "upfront", ("ratable_daily", "point_in_time")),
    "is-active-not-boolean": BadFile("sales_orders.csv", edited("sales_orders", {(3, "IsActive"): "yes"}),
                                     3, "IsActive", "yes", ("true or false",)),
    "account-type-unknown": BadFile(
        "account_mappings.csv", edited("account_mappings", {(4, "Account_Type"): "Deferred Income"}),
        4, "Account_Type", "Deferred Income", ("Contra Revenue", "Expense Recognized")),
    "exchange-rate-from-equals-to": BadFile(
        "exchange_rates.csv", edited("exchange_rates", {(3, "To_Currency"): "EUR"}),
        3, "To_Currency", "EUR", ("same", "From_Currency")),
    # keys within the file
    "duplicate-key": BadFile("customers.csv", edited("customers", {(3, "Customer_Id"): "C100"}),
                             3, "Customer_Id", "C100", ("more than once",)),
    "duplicate-composite-key": BadFile(
        "usage.csv", edited("usage", {(3, "Usage_Date"): "2025-01-20"}),
        3, "Sales_Order_Item_Id, Usage_Date", "SO-1-3 / 2025-01-20", ("more than once",)),
    "duplicate-key-with-empty-part": BadFile(
        "account_mappings.csv", edited("account_mappings", {(3, "Account_Type"): "Contra Revenue"}),
        3, "Account_Type, Subsidiary_Id", ANY, ("more than once",)),
    # references
    "unknown-customer": BadFile("sales_orders.csv", edited("sales_orders", {(5, "Customer_Id"): "C999"}),
                                5, "Customer_Id", "C999", ("not a known customer",)),
    "unknown-product": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Product_Id"): "P-NOPE"}),
                               3, "Product_Id", "P-NOPE", ("not a known product",)),
    "invoice-unknown-order-line": BadFile(
        "invoices.csv", edited("invoices", {(4, "Sales_Order_Item_Id"): "SO-1-9"}),
        4, "Sales_Order_Item_Id", "SO-1-9", ("not a known sales-order line",)),
    "invoice-as-contract-unknown-customer": BadFile(
        "invoices.csv", edited("invoices", {(6, "Customer_Id"): "C999"}),
        6, "Customer_Id", "C999", ("not a known customer",)),
    "invoice-as-contract-unknown-product": BadFile(
        "invoices.csv", edited("invoices", {(6, "Product_Id"): "P-NOPE"}),
        6, "Product_Id", "P-NOPE", ("not a known product",)),
    "invoice-as-contract-without-customer": BadFile(
        "invoices.csv", edited("invoices", {(6, "Customer_Id"): ""}),
        6, "Customer_Id", None, ("required", "invoice-as-contract")),
    "invoice-as-contract-without-product": BadFile(
        "invoices.csv", edited("invoices", {(6, "Product_Id"): ""}),
        6, "Product_Id", None, ("required", "invoice-as-contract")),
    "usage-unknown-line": BadFile("usage.csv", edited("usage", {(3, "Sales_Order_Item_Id"): "SO-9-9"}),
                                  3, "Sales_Order_Item_Id", "SO-9-9", ("not a known sales-order line",)),
    "commission-unknown-line": BadFile(
        "commissions.csv", edited("commissions", {(2, "Sales_Order_Item_Id"): "SO-9-9"}),
        2, "Sales_Order_Item_Id", "SO-9-9", ("not a known sales-order line",)),
    "two-currencies-in-one-order": BadFile("sales_orders.csv", edited("sales_orders", {(4, "Currency"): "EUR"}),
                                           4, "Currency", "EUR", ("one currency",)),
    "currency-differs-from-imported-line": BadFile(
        # only line SO-1-2, now in EUR, while SO-1-1 and SO-1-3 of the same order are in USD
        "sales_orders.csv", edited("sales_orders", {(2, "Currency"): "EUR"}, rows=[3]),
        2, "Currency", "EUR", ("USD", "SO-1")),
    # columns and values
    "required-column-missing": BadFile("sales_orders.csv", edited("sales_orders", {(1, "Quantity"): "Qty"}),
                                       1, "Quantity", ANY, ("missing",)),
    "required-value-empty": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Customer_Id"): ""}),
                                    3, "Customer_Id", None, ("required",)),
    "required-value-blank": BadFile("sales_orders.csv", edited("sales_orders", {(3, "Customer_Id"): "   "}),
                                    3, "Customer_Id", None, ("required",)),
    # the file itself
    "not-utf8": BadFile("customers.csv", _not_utf8(), 3, "Customer_Name", ANY, ("UTF-8",)),
    "malformed-csv-ragged-row": BadFile("products.csv", _ragged_row(), 3, ANY, ANY, ("CSV",)),
    "malformed-csv-unclosed-quote": BadFile("products.csv", _unclosed_quote(), 3, ANY, ANY, ("CSV",)),
}


@pytest.mark.parametrize("case", list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_one_bad_value_rejects_the_whole_file(
    case: BadFile, loaded: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    before = inputs.raw_tables(loaded)
    batches_before = batch_count(loaded)
    report = run(loaded, tmp_path / "drop", {case.name: case.content})

    assert [o.status for o in report.outcomes] == ["rejected"]
    assert batch_count(loaded) == batches_before + 1
    assert_rejected_cleanly(
        loaded, report, before, case.name,
        row=case.row, column=case.column, value=case.value, reason_has=case.reason_has,
    )


def test_bad_files_start_from_valid_ones(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """The editing helper itself: with no edit, every file imports into the baseline as identical content."""
    report = run(loaded, tmp_path / "drop", {f"{t}.csv": edited(t, {}) for t in BATCH1})
    assert not report.rejected, report.failure_message()
    assert {o.status for o in report.outcomes} == {"unchanged"}


def test_a_rejected_file_does_not_stop_the_others(
    loaded: duckdb.DuckDBPyConnection, baseline: Baseline, tmp_path: Path
) -> None:
    before = inputs.raw_tables(loaded)
    files = {
        "customers.csv": edited("customers", {(3, "Customer_Name"): "Contoso AG"}),
        "products.csv": edited("products", {(4, "Revenue_Rule"): "metered"}),
        "usage_feb.csv": edited("usage", {(3, "Sales_Order_Item_Id"): "SO-7-7"}),
        "commissions.csv": edited("commissions", {(2, "Commission_Date"): "2025-03-05"}),
    }
    report = run(loaded, tmp_path / "drop", files)

    statuses = {o.path: o.status for o in report.outcomes}
    assert statuses == {
        "customers.csv": "applied",
        "products.csv": "rejected",
        "usage_feb.csv": "rejected",
        "commissions.csv": "applied",
    }
    assert sorted(o.path for o in report.rejected) == ["products.csv", "usage_feb.csv"]
    message = report.failure_message()
    assert message.startswith("2 file(s) rejected")
    assert "products.csv" in message and "row 4" in message and "metered" in message
    assert "usage_feb.csv" in message and "row 3" in message and "SO-7-7" in message

    after = inputs.raw_tables(loaded)
    assert after["raw_products"] == before["raw_products"]
    assert after["raw_usage"] == before["raw_usage"]
    assert customer_name(loaded, "C200") == "Contoso AG"
    assert loaded.execute("SELECT count(*) FROM commissions").fetchall() == [(2,)]
    assert {e["path"] for o in report.rejected for e in recorded_errors(loaded, o.batch_id)} == {
        "products.csv",
        "usage_feb.csv",
    }


# ------------------------------------------------------------------------------------------------
# upsert by key with history


def test_a_changed_row_replaces_the_current_one_and_keeps_the_earlier_version(
    loaded: duckdb.DuckDBPyConnection, baseline: Baseline, tmp_path: Path
) -> None:
    before = inputs.raw_tables(loaded)
    # batch 2 of the worked example: the subscription line SO-1-1 upsold from 10,800 to 11,400
    upsell = edited("sales_orders", {(2, "Sale_Price"): "11400.00"}, rows=[2])
    report = run(loaded, tmp_path / "drop", {"sales_orders_upsell.csv": upsell})
    o = outcome(report, "sales_orders_upsell.csv")
    assert (o.status, o.rows_new, o.rows_changed, o.rows_unchanged) == ("applied", 0, 1, 0)

    original = baseline.batch_of["sales_orders.csv"]
    versions = loaded.execute(
        "SELECT Sale_Price, _batch_id, _is_current, _superseded_by_batch, _row_number FROM raw_sales_orders "
        "WHERE Sales_Order_Item_Id = 'SO-1-1' ORDER BY _batch_id"
    ).fetchall()
    assert versions == [
        (Decimal("10800.000000"), original, False, o.batch_id, 2),
        (Decimal("11400.000000"), o.batch_id, True, None, 2),
    ]
    assert loaded.execute("SELECT Sale_Price FROM sales_orders WHERE Sales_Order_Item_Id = 'SO-1-1'").fetchall() == [
        (Decimal("11400.000000"),)
    ]
    # Every other row, and every other table, is exactly as it was.
    after = inputs.raw_tables(loaded)
    assert {t: r for t, r in after.items() if t != "raw_sales_orders"} == {
        t: r for t, r in before.items() if t != "raw_sales_orders"
    }
    others = loaded.execute(
        "SELECT * FROM raw_sales_orders WHERE Sales_Order_Item_Id <> 'SO-1-1' ORDER BY ALL"
    ).fetchall()
    assert others == [r for r in before["raw_sales_orders"] if r[1] != "SO-1-1"]
    assert loaded.execute(
        "SELECT status, rows_new, rows_changed, rows_unchanged FROM import_batches WHERE batch_id = ?", [o.batch_id]
    ).fetchall() == [("applied", 0, 1, 0)]


def test_a_full_file_with_one_change_writes_one_row(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = inputs.raw_tables(loaded)
    changed = edited("customers", {(3, "Email"): "ar@contoso.example"})
    report = run(loaded, tmp_path / "drop", {"customers.csv": changed})
    o = outcome(report, "customers.csv")
    assert (o.status, o.rows_new, o.rows_changed, o.rows_unchanged) == ("applied", 0, 1, 1)
    assert len(inputs.raw_tables(loaded)["raw_customers"]) == len(before["raw_customers"]) + 1


def test_reimporting_identical_content_changes_nothing(empty: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    first = run(empty, inbox, inputs.batch1_files())
    assert not first.rejected
    before = inputs.raw_tables(empty)

    again = run(empty, inbox, incremental=False)
    assert len(again.outcomes) == len(BATCH1)
    for o in again.outcomes:
        file_type = o.path.removesuffix(".csv")
        assert (o.status, o.rows_new, o.rows_changed, o.rows_unchanged) == ("unchanged", 0, 0, BATCH1_ROWS[file_type])
        assert batch_status(empty, o.batch_id) == "unchanged"
    assert inputs.raw_tables(empty) == before

    # The same content under another name is identical content too.
    copy = run(empty, inbox, {"customers_copy.csv": BATCH1["customers"]})
    assert outcome(copy, "customers_copy.csv").status == "unchanged"
    assert inputs.raw_tables(empty) == before


def test_a_value_set_or_cleared_is_a_change_and_an_empty_value_left_empty_is_not(
    loaded: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Rows are compared value by value, NULL equal to NULL: a field filled in or cleared is a change."""
    before = inputs.raw_tables(loaded)
    filled = edited("customers", {(2, "Email"): "billing-new@example.com"}, rows=[2])
    report = run(loaded, tmp_path / "drop1", {"customers_filled.csv": filled})
    o = outcome(report, "customers_filled.csv")
    assert (o.rows_new, o.rows_changed, o.rows_unchanged) == (0, 1, 0)
    cleared = edited("customers", {(2, "Email"): ""}, rows=[2])
    report = run(loaded, tmp_path / "drop2", {"customers_cleared.csv": cleared})
    o = outcome(report, "customers_cleared.csv")
    assert (o.rows_new, o.rows_changed, o.rows_unchanged) == (0, 1, 0)
    assert loaded.execute("SELECT Email FROM customers WHERE Customer_Id = (SELECT Customer_Id FROM raw_customers "
                          "WHERE _row_number = 2 AND _is_current)").fetchall() == [(None,)]
    again = run(loaded, tmp_path / "drop3", {"customers_cleared_again.csv": cleared})
    assert outcome(again, "customers_cleared_again.csv").status == "unchanged"
    assert len(inputs.raw_tables(loaded)["raw_customers"]) == len(before["raw_customers"]) + 2


def test_a_warehouse_holding_row_hashes_drops_them_and_still_finds_identical_content_unchanged(
    loaded: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """Warehouses created before rows were compared value by value held an md5 of each row in a NOT NULL
    column `_row_hash`; opening one drops the column (rows otherwise untouched), and importing the same files
    again changes nothing."""
    before = inputs.raw_tables(loaded)
    for ft in FILE_TYPES.values():
        loaded.execute(f"ALTER TABLE {ft.table} ADD COLUMN _row_hash VARCHAR DEFAULT 'an md5 of the row'")
        loaded.execute(f"ALTER TABLE {ft.table} ALTER COLUMN _row_hash SET NOT NULL")
    loaded.execute("DROP TABLE revrec_schema")  # as a warehouse of the earlier version
    loaded.close()
    con = warehouse.connect(tmp_path / "w.duckdb")
    try:
        assert con.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = '_row_hash'"
        ).fetchall() == []
        assert inputs.raw_tables(con) == before
        again = run(con, tmp_path / "inbox", inputs.batch1_files(), incremental=False)
        assert {o.status for o in again.outcomes} == {"unchanged"}, again.failure_message()
        assert inputs.raw_tables(con) == before
    finally:
        con.close()


# ------------------------------------------------------------------------------------------------
# the incremental ledger


def test_incremental_ledger(empty: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    run(empty, inbox, inputs.batch1_files())
    state = inputs.raw_tables(empty)
    batches = batch_count(empty)
    assert batches == len(BATCH1)

    def ledger_rows() -> int:
        return empty.execute("SELECT count(*) FROM import_ledger").fetchall()[0][0]

    # Nothing changed: every file skipped, no batch.
    unchanged = run(empty, inbox)
    assert [(o.status, o.batch_id) for o in unchanged.outcomes] == [("skipped", None)] * len(BATCH1)
    assert batch_count(empty) == batches and inputs.raw_tables(empty) == state

    # Same content, new modification time: recognized as identical, still no batch.
    customers = inbox / "customers.csv"
    later = customers.stat().st_mtime + 3600
    os.utime(customers, (later, later))
    touched = run(empty, inbox)
    o = outcome(touched, "customers.csv")
    assert (o.status, o.batch_id) == ("skipped", None)
    assert "identical" in o.message
    assert batch_count(empty) == batches and inputs.raw_tables(empty) == state
    # ... and its new identity is remembered: the next run finds it in the ledger without reading it.
    ledger_after_touch = ledger_rows()
    assert {o.status for o in run(empty, inbox).outcomes} == {"skipped"}
    assert ledger_rows() == ledger_after_touch

    # Changed content: a new batch.
    customers.write_text(edited("customers", {(3, "Customer_Name"): "Contoso AG"}), encoding="utf-8")
    changed = run(empty, inbox)
    o = outcome(changed, "customers.csv")
    assert (o.status, o.rows_changed, o.rows_unchanged) == ("applied", 1, 1)
    assert o.batch_id is not None and o.batch_id > batches
    assert batch_count(empty) == batches + 1
    assert {x.status for x in changed.outcomes if x.path != "customers.csv"} == {"skipped"}


def test_a_corrected_file_is_imported_as_a_new_batch(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    before = inputs.raw_tables(loaded)
    bad = run(loaded, drop, {"customers.csv": edited("customers", {(3, "Customer_Id"): "C100"})})
    rejected = outcome(bad, "customers.csv")
    assert_rejected_cleanly(loaded, bad, before, "customers.csv", row=3, column="Customer_Id", value="C100")

    fixed = run(loaded, drop, {"customers.csv": edited("customers", {(3, "Customer_Name"): "Contoso AG"})})
    applied = outcome(fixed, "customers.csv")
    assert (applied.status, applied.rows_changed, applied.rows_unchanged) == ("applied", 1, 1)
    assert applied.batch_id > rejected.batch_id
    assert loaded.execute(
        "SELECT batch_id, status FROM import_batches "
        "WHERE path = 'customers.csv' AND batch_id >= ? ORDER BY batch_id",
        [rejected.batch_id],
    ).fetchall() == [(rejected.batch_id, "rejected"), (applied.batch_id, "applied")]
    assert loaded.execute("SELECT DISTINCT batch_id FROM import_errors").fetchall() == [(rejected.batch_id,)]
    assert customer_name(loaded, "C200") == "Contoso AG"


NEW_ORDER_LINE = (
    "Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,"
    "Service_Start_Date,Service_End_Date,Currency\n"
    "SO-3,SO-3-1,C100,P-API,2025-02-01,1,0,2025-02-01,2025-12-31,USD\n"
)
INVOICE_OF_NEW_LINE = (
    "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Item_Id\n"
    "INV-9001,1,2025-02-28,10.00,USD,SO-3-1\n"
)
USAGE_OF_NEW_LINE = "Sales_Order_Item_Id,Usage_Date,Amount\nSO-3-1,2025-02-03,10.00\n"


def test_a_rejected_file_sent_again_after_its_cause_is_fixed_is_imported(
    loaded: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """An invoice arrives before its order: rejected. The order arrives and the invoice is sent again
    (same content, new modification time): nothing of it was ever imported, so it must be tried again."""
    drop = tmp_path / "drop"
    first = run(loaded, drop, {"invoices_feb.csv": INVOICE_OF_NEW_LINE})
    assert outcome(first, "invoices_feb.csv").status == "rejected"

    inputs.write_files(drop, {"sales_orders_feb.csv": NEW_ORDER_LINE, "invoices_feb.csv": INVOICE_OF_NEW_LINE})
    later = (drop / "invoices_feb.csv").stat().st_mtime + 60
    os.utime(drop / "invoices_feb.csv", (later, later))
    second = run(loaded, drop)
    assert outcome(second, "sales_orders_feb.csv").status == "applied"
    assert outcome(second, "invoices_feb.csv").status == "applied", outcome(second, "invoices_feb.csv").message
    assert loaded.execute("SELECT count(*) FROM invoices WHERE Invoice_Number = 'INV-9001'").fetchall() == [(1,)]


# ------------------------------------------------------------------------------------------------
# names, headers, encodings


def test_header_names_bom_and_extra_columns(empty: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    customers = (
        "\ufeff customer_id ,CUSTOMER_NAME , Notes ,subsidiary_ID,EMAIL,country\n"
        "C100,Northwind Traders,key account,SUB-US,ap@northwind.example,US\n"
        "C200,Contoso GmbH,,SUB-DE,billing@contoso.example,DE\n"
    )
    report = run(empty, tmp_path / "inbox", {"customers.csv": customers})
    assert not report.rejected, report.failure_message()
    assert outcome(report, "customers.csv").rows_new == 2
    assert inputs.current_rows(empty, "customers") == [
        ("C100", "Northwind Traders", "SUB-US", "ap@northwind.example", "US"),
        ("C200", "Contoso GmbH", "SUB-DE", "billing@contoso.example", "DE"),
    ]
    extra = dict(empty.execute("SELECT Customer_Id, _extra FROM customers").fetchall())
    assert json.loads(extra["C100"]) == {"Notes": "key account"}
    columns = [r[0] for r in empty.execute("DESCRIBE raw_customers").fetchall()]
    assert not any("note" in c.lower() for c in columns)


def test_type_comes_from_the_name_prefix(empty: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    files = {
        "Customers.csv": BATCH1["customers"],
        "PRODUCTS_catalogue.csv": BATCH1["products"],
        "sales_orders_2025-01.csv": BATCH1["sales_orders"],
        "INVOICES-jan.csv": BATCH1["invoices"],
    }
    report = run(empty, tmp_path / "inbox", files)
    assert {o.path: o.status for o in report.outcomes} == dict.fromkeys(files, "applied")
    assert [o.path for o in report.outcomes] == list(files)  # customers, products, sales_orders, invoices
    for file_type in ("customers", "products", "sales_orders", "invoices"):
        assert empty.execute(f"SELECT count(*) FROM {file_type}").fetchall()[0][0] == BATCH1_ROWS[file_type]


def test_a_name_with_no_known_type_is_rejected(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = inputs.raw_tables(loaded)
    report = run(loaded, tmp_path / "drop", {"orders_2025-01.csv": BATCH1["sales_orders"]})
    hit = assert_rejected_cleanly(
        loaded, report, before, "orders_2025-01.csv", row=None, column=None, reason_has=("known file type",)
    )
    for file_type in APPLY_ORDER:
        assert file_type in hit["reason"]  # the reason lists the names that would work


# ------------------------------------------------------------------------------------------------
# XLSX workbooks


def test_xlsx_with_one_sheet_per_type_is_applied(
    empty: duckdb.DuckDBPyConnection, baseline: Baseline, tmp_path: Path
) -> None:
    # Sheets in alphabetical order (accounts and commissions first), titled in mixed case; dates are date
    # cells and amounts and ids numeric cells, as a spreadsheet user makes them.
    sheets = {file_type.title(): BATCH1[file_type] for file_type in sorted(BATCH1)}
    inputs.write_xlsx(tmp_path / "inbox" / "book.xlsx", sheets)
    report = run(empty, tmp_path / "inbox")

    o = outcome(report, "book.xlsx")
    assert not report.rejected, report.failure_message()
    assert (o.status, o.units, o.rows_new) == ("applied", len(BATCH1), sum(BATCH1_ROWS.values()))
    assert batch_count(empty) == 1
    for file_type in BATCH1:
        assert inputs.current_rows(empty, file_type) == baseline.current[file_type], file_type
    assert empty.execute("SELECT DISTINCT _batch_id FROM raw_sales_orders").fetchall() == [(o.batch_id,)]
    assert empty.execute("SELECT _row_number FROM usage ORDER BY ALL").fetchall() == [(2,), (3,), (4,)]


def test_xlsx_with_one_bad_sheet_is_rejected_whole(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = inputs.raw_tables(loaded)
    sheets = {
        "customers": edited("customers", {(3, "Customer_Name"): "Contoso AG"}),  # valid on its own
        "sales_orders": edited("sales_orders", {(3, "Quantity"): "0"}),
    }
    inputs.write_xlsx(tmp_path / "drop" / "book.xlsx", sheets)
    report = run(loaded, tmp_path / "drop")
    assert_rejected_cleanly(
        loaded, report, before, "book.xlsx", unit="book.xlsx#sales_orders",
        row=3, column="Quantity", value="0", reason_has=("greater than 0",),
    )


def test_xlsx_bad_text_in_a_date_column_is_rejected(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = inputs.raw_tables(loaded)
    inputs.write_xlsx(
        tmp_path / "drop" / "book.xlsx", {"invoices": edited("invoices", {(4, "Billing_Date"): "2025-02-29"})}
    )
    report = run(loaded, tmp_path / "drop")
    assert_rejected_cleanly(
        loaded, report, before, "book.xlsx", unit="book.xlsx#invoices",
        row=4, column="Billing_Date", value="2025-02-29", reason_has=("date",),
    )


def test_xlsx_row_numbers_count_blank_rows(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A blank row in a sheet is still a row: the error must point at the row the user sees."""
    before = inputs.raw_tables(loaded)
    grid = inputs.table("sales_orders")
    grid.insert(2, [""] * len(grid[0]))  # row 3 left blank
    grid[4][grid[0].index("Quantity")] = "0"  # row 5 (SO-1-3)
    inputs.write_xlsx(tmp_path / "drop" / "book.xlsx", {"sales_orders": grid})
    report = run(loaded, tmp_path / "drop")
    assert_rejected_cleanly(
        loaded, report, before, "book.xlsx", unit="book.xlsx#sales_orders", row=5, column="Quantity", value="0"
    )


# ------------------------------------------------------------------------------------------------
# ZIP files of CSVs


def test_zip_of_csvs_is_applied_in_dependency_order(
    empty: duckdb.DuckDBPyConnection, baseline: Baseline, tmp_path: Path
) -> None:
    inputs.write_zip(tmp_path / "inbox" / "drop.zip", dict(sorted(inputs.batch1_files().items())))
    report = run(empty, tmp_path / "inbox")
    o = outcome(report, "drop.zip")
    assert not report.rejected, report.failure_message()
    assert (o.status, o.units, o.rows_new) == ("applied", len(BATCH1), sum(BATCH1_ROWS.values()))
    assert batch_count(empty) == 1
    for file_type in BATCH1:
        assert inputs.current_rows(empty, file_type) == baseline.current[file_type], file_type


def test_zip_with_one_bad_member_is_rejected_whole(loaded: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    before = inputs.raw_tables(loaded)
    members = {
        "customers.csv": edited("customers", {(3, "Customer_Name"): "Contoso AG"}),  # valid on its own
        "sales_orders.csv": NEW_ORDER_LINE,  # valid on its own
        "usage.csv": edited("usage", {(4, "Amount"): "500.005"}),
    }
    inputs.write_zip(tmp_path / "drop" / "drop.zip", members)
    report = run(loaded, tmp_path / "drop")
    assert_rejected_cleanly(
        loaded, report, before, "drop.zip", unit="drop.zip/usage.csv",
        row=4, column="Amount", value="500.005", reason_has=("2 decimals",),
    )


@pytest.mark.parametrize("zip_name", ["contracts.zip", "usage_feb.zip"])
def test_a_zip_is_ordered_among_other_files_by_the_units_it_holds(
    zip_name: str, loaded: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """The ZIP holds a new order line and its usage; a CSV beside it invoices that line. Units apply by
    type (sales_orders before invoices), so the ZIP goes first, whatever its own name says."""
    inputs.write_zip(
        tmp_path / "drop" / zip_name, {"sales_orders_feb.csv": NEW_ORDER_LINE, "usage_feb.csv": USAGE_OF_NEW_LINE}
    )
    report = run(loaded, tmp_path / "drop", {"invoices_feb.csv": INVOICE_OF_NEW_LINE})
    assert not report.rejected, report.failure_message()
    assert [o.path for o in report.outcomes] == [zip_name, "invoices_feb.csv"]


# ------------------------------------------------------------------------------------------------
# row numbers of CSV records, and the one-pass check of row values


CUSTOMERS_HEADER = "Customer_Id,Customer_Name,Subsidiary_Id,Email,Country"
# (file lines after the header, line of the record whose Customer_Name is empty); "\n" is replaced by the
# case's line ending. Blank lines and quoted newlines count as lines, as in a text editor.
ROW_NUMBER_CASES = {
    "plain": ("C1,A,S,e,US\nC2,,S,e,US\n", 3),
    "no-final-newline": ("C1,A,S,e,US\nC2,,S,e,US", 3),
    "blank-lines": ("C1,A,S,e,US\n\nC2,,S,e,US\n\n\n", 4),
    "quoted-comma": ('C1,"A, B",S,e,US\nC2,,S,e,US\n', 3),
    "quoted-comma-and-blank-line": ('C1,"A, B",S,e,US\n\nC2,,S,e,US\n', 4),
    "quoted-newline": ('C1,"A\nB",S,e,US\nC2,,S,e,US\n', 4),
    "quoted-newline-and-blank-lines": ('C1,"A\nB",S,e,US\n\nC2,,S,e,US\n\n', 5),
    "leading-blank-line": ("C1,A,S,e,US\nC2,,S,e,US\n", 4),  # the file starts with a blank line
}


@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("case", list(ROW_NUMBER_CASES), ids=list(ROW_NUMBER_CASES))
def test_csv_row_numbers_are_the_lines_a_person_sees(
    case: str, line_end: str, empty: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    body, bad_line = ROW_NUMBER_CASES[case]
    text = ("\n" if case == "leading-blank-line" else "") + CUSTOMERS_HEADER + "\n" + body
    data = text.replace("\n", line_end).encode()
    before = inputs.raw_tables(empty)
    report = run(empty, tmp_path / "drop", {"customers.csv": data})
    assert_rejected_cleanly(empty, report, before, "customers.csv", row=bad_line, column="Customer_Name", value=None)

    # Whichever way they were found (quick when each line is one record), the row numbers are those the
    # csv module finds record by record.
    numbers = reader._read_csv_bytes(data, "customers.csv")["_row_number"].to_list()
    assert numbers == reader._record_start_lines(data, len(numbers))


def test_blank_lines_are_not_records_but_keep_the_row_numbers_after_them(
    empty: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    text = CUSTOMERS_HEADER + '\r\nC1,"A\r\nB",S,e,US\r\n\r\nC2,B,S,e,US\r\n\r\n'
    report = run(empty, tmp_path / "inbox", {"customers.csv": text})
    assert not report.rejected, report.failure_message()
    assert outcome(report, "customers.csv").rows_new == 2
    rows = empty.execute("SELECT Customer_Id, Customer_Name, _row_number FROM customers ORDER BY ALL").fetchall()
    assert rows == [("C1", "A\r\nB", 2), ("C2", "B", 5)]


# Values that break a rule of their kind (some pass the format but not the next rule), next to valid ones.
BAD_VALUES = {
    DATE: ["2025-02-30", "2025-1-5", "10/01/2025", "bad"],
    MONEY: ["1.001", "1e5", "abc", "1000000000000000.00"],
    UNIT_PRICE: ["-1", "1.0000001", "-0.5x"],
    QUANTITY: ["0", "-1", "0.000", "1.0000001"],
    RATE: ["0", "-1.5", "1.0000000000001"],
    CURRENCY: ["EURO", "usd", "US"],
    RULE: ["weekly", "Ratable_Daily"],
    BOOL: ["yes", "TRUE", "t"],
}


@pytest.mark.parametrize("file_type", APPLY_ORDER)
def test_row_errors_are_those_pandera_finds_with_the_whole_schema(file_type: str) -> None:
    """row_errors checks every rule in one pass and asks pandera for the failing rows only of the columns
    that fail; the problems must be exactly those pandera reports when it checks every column."""
    ft = FILE_TYPES[file_type]
    grid = inputs.table(file_type) if file_type in BATCH1 else list(csv.reader(io.StringIO(inputs.SUBSIDIARIES)))
    header, valid = grid[0], grid[1]
    good = {c.name: (valid[header.index(c.name)] if c.name in header else None) or None for c in ft.columns}
    rows = [good]
    for c in ft.columns:
        for bad in BAD_VALUES.get(c.kind, []) + ([None] if c.required else []):
            rows.append({**good, c.name: bad})
    if file_type == "account_mappings":
        rows.append({**good, "Account_Type": "Deferred Income"})
    free_text = [k for k in ft.key if not validation.rules_for(ft)[k]]
    rows = [{**r, **{k: f"{r[k]}-{i}" for k in free_text if r[k] is not None}} for i, r in enumerate(rows)]
    frame = pl.DataFrame(rows, schema=dict.fromkeys([c.name for c in ft.columns], pl.String)).with_columns(
        pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("_row_number")
    )
    assert validation.row_errors(ft, frame.head(1)).height == 0  # the valid row passes

    expected: set[tuple] = set()
    try:
        validation.schema_for(ft).validate(frame.drop("_row_number"), lazy=True)
    except pandera.errors.SchemaErrors as exc:
        for f in exc.failure_cases.iter_rows(named=True):
            reason = "is required but empty" if f["check"] == "not_nullable" else f["check"]
            expected.add((f["index"] + 2, f["column"], f["failure_case"], reason))
    found = {tuple(r) for r in validation.row_errors(ft, frame).iter_rows()}
    found_by_rule = {e for e in found if not e[3].startswith(("is before", "the same key"))}
    assert found_by_rule == expected
    assert {e[0] for e in expected} == set(range(3, len(rows) + 2))  # every row but the valid one has a problem
