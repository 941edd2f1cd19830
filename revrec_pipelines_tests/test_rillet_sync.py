"""The Rillet sync (SPEC §3) against the stateful emulator over real HTTP on loopback.

The central claim: Rillet contracts, invoices and credit memos produce exactly the revenue the
equivalent input files produce. `org_seed()` is a small organisation in Rillet; `EQUIVALENT_FILES`
are the CSVs a person would write for it by hand, following docs/rillet-mapping.md. The rest covers
the incremental cursor, all-or-nothing failure, paging and a repeated cursor, credit memos, and the
API key never reaching an error or the warehouse. Waits go through an injected fake clock.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from revrec_pipelines.lib import engine, importer, sources, sql, warehouse
from revrec_pipelines.lib.rillet import RilletClient
from revrec_pipelines.lib.rillet_sync import RilletSyncError, SyncReport, sync
from revrec_pipelines_tests.emulators.rillet_emulator import (
    RilletEmulator,
    contract,
    contract_item,
    credit_memo,
    credit_memo_item,
    customer,
    invoice,
    invoice_item,
    money,
    one_time_price,
    product,
    recurring_price,
    rillet_id,
    sample_seed,
)

API_KEY = "rk_sync_7e3f9a0c4b1d8e2f6a5c"  # distinctive, so a leak is easy to find
MAX_RETRIES = 2


class FakeClock:
    """A monotonic clock that only moves when the client sleeps (pacing and backoff cost no time)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


# -- the organisation in Rillet, and the same organisation as files ---------------------------------


def org_seed() -> dict[str, list[dict[str, Any]]]:
    """sample_seed() (Globex: a 12-month subscription + onboarding, INV-1001, CM-1001 unapplied) plus:
    an Initech contract with an open-ended item and a 3-seat item, a cancelled Globex pilot, an invoice
    on the Initech contract, two invoices without a contract, a credit memo applied to the Initech
    invoice, and prospects enough for several pages of customers."""
    seed = sample_seed()
    us = seed["subsidiaries"][0]
    globex, initech = seed["customers"]
    saas, _onboarding = seed["products"]
    support = product(
        "Premium support",
        account_code="4100",
        price=recurring_price(16_667, interval_months=3),
        revenue_pattern="DAILY",
    )
    consulting = product(
        "Consulting",
        account_code="4100",
        price=one_time_price(250_000),
        revenue_pattern="DAILY",
        external_id="PROD-CONS",
    )
    prospects = [customer(f"Prospect {n}", updated_at=f"2025-01-0{n}T08:00:00Z") for n in (1, 2, 3)]
    initech_deal = contract(
        "Initech platform",
        customer_id=initech["id"],
        subsidiary_id=us["id"],
        start_date="2025-03-01",
        close_date="2025-02-20",
        items=[
            # open-ended: 2 seats at 500.00 a month, booked for 12 months (12 000.00)
            contract_item(
                saas["id"],
                price=recurring_price(50_000),
                quantity=2,
                total_value_cents=100_000,
                start_date="2025-03-01",
                revenue_pattern="EVEN_PERIOD",
                external_id="SO-2001-1",
            ),
            contract_item(
                support["id"],
                price=recurring_price(16_667, interval_months=3),
                quantity=3,
                total_value_cents=100_000,
                start_date="2025-03-01",
                end_date="2025-08-31",
                revenue_pattern="DAILY",
                external_id="SO-2001-2",
            ),
        ],
    )
    pilot = contract(
        "Globex pilot",
        customer_id=globex["id"],
        subsidiary_id=us["id"],
        start_date="2025-01-01",
        end_date="2025-03-31",
        status="CANCELLED",
        items=[
            contract_item(
                consulting["id"],
                price=one_time_price(300_000),
                total_value_cents=300_000,
                start_date="2025-01-01",
                end_date="2025-03-31",
                revenue_pattern="DAILY",
                external_id="SO-3001-1",
            )
        ],
    )
    inv_2001 = invoice(
        "INV-2001",
        customer_id=initech["id"],
        subsidiary_id=us["id"],
        contract_id=initech_deal["id"],
        invoice_date="2025-03-01",
        items=[
            invoice_item(
                saas["id"],
                amount_cents=100_000,
                description="Platform March",
                service_period=("2025-03-01", "2025-03-31"),
            ),
            invoice_item(
                support["id"],
                amount_cents=100_000,
                description="Support",
                service_period=("2025-03-01", "2025-08-31"),
            ),
        ],
        updated_at="2025-03-01T09:00:00Z",
    )
    inv_3001 = invoice(
        "INV-3001",
        customer_id=initech["id"],
        subsidiary_id=us["id"],
        invoice_date="2025-04-01",
        items=[
            invoice_item(
                consulting["id"],
                amount_cents=250_000,
                description="Workshop",
                service_period=("2025-04-01", "2025-04-30"),
            )
        ],
        updated_at="2025-04-01T09:00:00Z",
    )
    inv_3002 = invoice(
        "INV-3002",
        customer_id=initech["id"],
        subsidiary_id=us["id"],
        invoice_date="2025-04-15",
        items=[invoice_item(consulting["id"], amount_cents=75_000, description="Travel")],
        updated_at="2025-04-15T09:00:00Z",
    )
    cm_2001 = credit_memo(
        "CM-2001",
        customer_id=initech["id"],
        subsidiary_id=us["id"],
        credit_memo_date="2025-04-10",
        status="APPLIED",
        items=[
            credit_memo_item(
                saas["id"],
                amount_cents=20_000,
                description="Outage credit",
                service_period=("2025-03-01", "2025-03-31"),
            )
        ],
        applications=[
            {
                "id": rillet_id("application", "CM-2001"),
                "credit_memo_id": rillet_id("credit_memo", "CM-2001"),
                "invoice_id": inv_2001["id"],
                "invoice_number": "INV-2001",
                "amount": money(20_000),
                "application_date": "2025-04-10",
            }
        ],
        updated_at="2025-04-10T09:00:00Z",
    )
    seed["customers"] += prospects
    seed["products"] += [support, consulting]
    seed["contracts"] += [initech_deal, pilot]
    seed["invoices"] += [inv_2001, inv_3001, inv_3002]
    seed["credit_memos"] += [cm_2001]
    return seed


def ids(seed: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Short names for the ids the hand-written files use."""
    globex, initech, *prospects = seed["customers"]
    saas, onboarding, support, consulting = seed["products"]
    deal, initech_deal, pilot = seed["contracts"]
    return {
        "us": seed["subsidiaries"][0]["id"],
        "globex": globex["id"],
        "initech": initech["id"],
        **{f"prospect{n}": c["id"] for n, c in enumerate(prospects, 1)},
        "saas": saas["id"],
        "onboarding": onboarding["id"],
        "support": support["id"],
        "consulting": consulting["id"],
        "deal": deal["id"],
        "subscription": deal["items"][0]["id"],
        "setup": deal["items"][1]["id"],
        "initech_deal": initech_deal["id"],
        "i_saas": initech_deal["items"][0]["id"],
        "i_support": initech_deal["items"][1]["id"],
        "pilot": pilot["id"],
        "p_item": pilot["items"][0]["id"],
    }


ACCOUNT_MAPPINGS = """\
Account_Type,Account_Id,Account_Name,Subsidiary_Id
Contra Revenue,4900,Billings contra revenue,
Revenue,4000,Subscription revenue,
Deferred Revenue,2400,Deferred revenue,
Unbilled Receivable,1250,Unbilled receivable,
Deferred Expense,1400,Deferred commissions,
Expense Clearing,2150,Commissions clearing,
Expense Recognized,6100,Commission expense,
"""


def equivalent_files(i: dict[str, str]) -> dict[str, str]:
    """org_seed() written by hand as SPEC §2 input files, following docs/rillet-mapping.md."""
    return {
        "customers.csv": f"""\
Customer_Id,Customer_Name,Subsidiary_Id,Email,Country
{i["globex"]},Globex Corporation,{i["us"]},,
{i["initech"]},Initech LLC,{i["us"]},,
{i["prospect1"]},Prospect 1,,,
{i["prospect2"]},Prospect 2,,,
{i["prospect3"]},Prospect 3,,,
""",
        "products.csv": f"""\
Product_Id,Product_Code,Product_Name,Revenue_Rule,SSP,Class,Location,Department
{i["saas"]},PROD-SAAS,Platform subscription,ratable_monthly,,,,
{i["onboarding"]},PROD-ONB,Onboarding,ratable_daily,,,,
{i["support"]},Premium support,Premium support,ratable_daily,,,,
{i["consulting"]},PROD-CONS,Consulting,ratable_daily,,,,
""",
        "subsidiaries.csv": f"""\
Subsidiary_Id,Subsidiary_Name,Rillet_Subsidiary_Id,Intacct_Location_Id
{i["us"]},Acme Inc.,{i["us"]},
""",
        "account_mappings.csv": ACCOUNT_MAPPINGS,
        "sales_orders.csv": f"""\
Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,Service_Start_Date,Service_End_Date,Currency,List_Price,Subsidiary_Id,IsActive,Revenue_Rule
{i["deal"]},{i["subscription"]},{i["globex"]},{i["saas"]},2025-01-01,1,12000.00,2025-01-01,2025-12-31,USD,,{i["us"]},true,ratable_monthly
{i["deal"]},{i["setup"]},{i["globex"]},{i["onboarding"]},2025-01-01,1,5000.00,2025-01-01,2025-01-31,USD,,{i["us"]},true,ratable_daily
{i["initech_deal"]},{i["i_saas"]},{i["initech"]},{i["saas"]},2025-02-20,2,6000.00,2025-03-01,2026-02-28,USD,,{i["us"]},true,ratable_monthly
{i["initech_deal"]},{i["i_support"]},{i["initech"]},{i["support"]},2025-02-20,3,333.333333,2025-03-01,2025-08-31,USD,,{i["us"]},true,ratable_daily
{i["pilot"]},{i["p_item"]},{i["globex"]},{i["consulting"]},2025-01-01,1,3000.00,2025-01-01,2025-03-31,USD,,{i["us"]},false,ratable_daily
""",
        "invoices.csv": f"""\
Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Service_Start_Date,Service_End_Date
INV-1001,1,2025-01-01,12000.00,USD,{i["deal"]},{i["subscription"]},{i["globex"]},{i["saas"]},2025-01-01,2025-12-31
INV-1001,2,2025-01-01,5000.00,USD,{i["deal"]},{i["setup"]},{i["globex"]},{i["onboarding"]},2025-01-01,2025-01-31
INV-2001,1,2025-03-01,1000.00,USD,{i["initech_deal"]},{i["i_saas"]},{i["initech"]},{i["saas"]},2025-03-01,2025-03-31
INV-2001,2,2025-03-01,1000.00,USD,{i["initech_deal"]},{i["i_support"]},{i["initech"]},{i["support"]},2025-03-01,2025-08-31
INV-3001,1,2025-04-01,2500.00,USD,,,{i["initech"]},{i["consulting"]},2025-04-01,2025-04-30
INV-3002,1,2025-04-15,750.00,USD,,,{i["initech"]},{i["consulting"]},,
CM-1001,1,2025-02-01,-500.00,USD,,,{i["globex"]},{i["onboarding"]},2025-01-01,2025-01-31
CM-2001,1,2025-04-10,-200.00,USD,{i["initech_deal"]},{i["i_saas"]},{i["initech"]},{i["saas"]},2025-03-01,2025-03-31
""",
    }


# -- fixtures and helpers ---------------------------------------------------------------------------


@pytest.fixture
def emulator() -> Iterator[RilletEmulator]:
    with RilletEmulator(api_key=API_KEY) as rillet:
        rillet.seed(**org_seed())
        rillet.page_size_cap = 2  # a few objects make several pages
        yield rillet


@pytest.fixture
def client(emulator: RilletEmulator) -> Iterator[RilletClient]:
    clock = FakeClock()
    with RilletClient(
        emulator.base_url,
        API_KEY,
        timeout=5.0,
        max_retries=MAX_RETRIES,
        backoff_base=0.001,
        backoff_max=0.01,
        sleep=clock.sleep,
        clock=clock,
    ) as rillet:
        yield rillet


def open_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    con = warehouse.connect(path)
    sql.run_file(con, "schema/rillet")  # until lib/warehouse.py lists it in SCHEMA_FILES
    return con


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_warehouse(tmp_path / "rillet.duckdb")
    yield connection
    connection.close()


def run_sync(con: duckdb.DuckDBPyConnection, client: RilletClient, **kwargs: Any) -> SyncReport:
    return sync(con, client, home_currency="USD", progress=lambda _m: None, **kwargs)


def import_files(con: duckdb.DuckDBPyConnection, folder: Path, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    report = importer.import_from_source(con, sources.LocalFolderSource(folder), progress=lambda _m: None)
    assert not report.rejected, report.failure_message()


def table_rows(con: duckdb.DuckDBPyConnection, table: str, exclude: tuple[str, ...] = ()) -> list[tuple]:
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in exclude]
    return con.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY ALL").fetchall()


MODEL_TABLES = ("raw_customers", "raw_products", "raw_subsidiaries", "raw_sales_orders", "raw_invoices")
BOOKKEEPING = (
    "_extra",
    "_row_number",
    "_batch_id",
    "_is_current",
    "_superseded_by_batch",
    "_source",
    "_loaded_at",
)


def current_model_rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] not in BOOKKEEPING]
    return con.execute(f"SELECT {', '.join(columns)} FROM {table} WHERE _is_current ORDER BY ALL").fetchall()


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Every row of every table of the warehouse."""
    tables = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' AND table_catalog = current_database()"
        ).fetchall()
    ]
    return {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall())) for t in sorted(tables)}


def versions(con: duckdb.DuckDBPyConnection, table: str, key: str) -> dict[str, int]:
    return dict(con.execute(f"SELECT {key}, count(*) FROM {table} GROUP BY ALL").fetchall())


def sync_state(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    rows = con.execute("SELECT endpoint, last_updated_at, last_complete FROM rillet_sync_state").fetchall()
    return {r[0]: r[1:] for r in rows}


def updated_gt_sent(emulator: RilletEmulator, path: str) -> list[str | None]:
    """The updated.gt of each first-page request to a list endpoint, in order."""
    return [r.param("updated.gt") for r in emulator.requests_to("GET", path) if r.param("cursor") is None]


# -- (1) the same revenue as the equivalent files ---------------------------------------------------


def test_rillet_objects_produce_the_same_revenue_as_the_equivalent_files(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    i = ids(org_seed())
    files = equivalent_files(i)
    import_files(con, tmp_path / "mappings", {"account_mappings.csv": files["account_mappings.csv"]})
    report = run_sync(con, client)
    engine.compute(con, "USD")

    by_hand = open_warehouse(tmp_path / "files.duckdb")
    import_files(by_hand, tmp_path / "inbox", files)
    engine.compute(by_hand, "USD")

    for table in MODEL_TABLES:  # the mapping itself, column by column
        assert current_model_rows(con, table) == current_model_rows(by_hand, table), table
    for table in ("order_lines", "line_periods", "journal_lines"):  # every amount, every period
        rillet_rows, file_rows = table_rows(con, table), table_rows(by_hand, table)
        assert rillet_rows, table
        assert rillet_rows == file_rows, table
    by_hand.close()

    sources_used = con.execute(
        "SELECT DISTINCT _source FROM (SELECT _source FROM raw_sales_orders UNION ALL SELECT _source FROM raw_invoices "
        "UNION ALL SELECT _source FROM raw_customers UNION ALL SELECT _source FROM raw_products)"
    ).fetchall()
    assert sources_used == [("rillet",)]
    assert [u.file_type for u in report.units] == [
        "customers",
        "products",
        "subsidiaries",
        "sales_orders",
        "invoices",
    ]
    assert con.execute(
        "SELECT count(*) FROM import_batches WHERE source = ? AND status = 'applied'",
        [f"rillet:{emulator.base_url}"],
    ).fetchall() == [(5,)]
    # the choices the files spell out, checked on the engine's side too
    allocated = dict(con.execute("SELECT Sales_Order_Item_Id, Allocated_Revenue FROM order_lines").fetchall())
    assert allocated[i["i_saas"]] == 1_200_000  # open-ended: 12 months of 2 × 500.00
    assert allocated[i["i_support"]] == 100_000  # 3 × 333.333333 books 1 000.00
    assert allocated[i["p_item"]] == 0  # cancelled contract
    assert any("open-ended" in w and i["i_saas"] in w for w in report.warnings)


# -- (2) incremental --------------------------------------------------------------------------------


def test_a_second_sync_sends_updated_gt_and_applies_only_what_changed(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    seed = org_seed()
    i = ids(seed)
    first = run_sync(con, client)
    assert updated_gt_sent(emulator, "/invoices") == [None]
    assert sync_state(con)["/invoices"] == ("2025-04-15T09:00:00Z", True)

    # INV-3001 re-priced, Initech renamed, the Initech support item re-valued (contracts have no updated_at)
    inv_3001 = next(x for x in seed["invoices"] if x["invoice_number"] == "INV-3001")
    inv_3001["items"][0]["total_amount"] = money(260_000)
    inv_3001["updated_at"] = "2025-05-01T00:00:00Z"
    initech = seed["customers"][1]
    initech.update(name="Initech Inc.", updated_at="2025-05-02T00:00:00Z")
    initech_deal = seed["contracts"][1]
    initech_deal["items"][1]["total_value"] = money(120_000)
    emulator.seed(invoices=[inv_3001], customers=[initech], contracts=[initech_deal])

    second = run_sync(con, client)
    # the cursor of the last successful sync, less the overlap (one minute)
    assert updated_gt_sent(emulator, "/invoices") == [None, "2025-04-15T08:59:00Z"]
    assert updated_gt_sent(emulator, "/customers") == [None, "2025-02-10T09:29:00Z"]
    assert updated_gt_sent(emulator, "/contracts") == [None, None]  # no updated.gt: read in full
    endpoints = {e.endpoint: e for e in second.endpoints}
    # INV-3001, and INV-3002 again (its updated_at is inside the overlap): read, found unchanged
    assert (endpoints["/invoices"].read, endpoints["/invoices"].new, endpoints["/invoices"].changed) == (
        2,
        0,
        1,
    )
    assert (endpoints["/contracts"].read, endpoints["/contracts"].changed) == (3, 1)
    assert sync_state(con)["/invoices"] == ("2025-05-01T00:00:00Z", True)

    # only the changed objects have new versions; everything else keeps its single version
    inv_versions = dict(
        con.execute(
            "SELECT Invoice_Number || '/' || Invoice_Line, count(*) FROM raw_invoices GROUP BY ALL"
        ).fetchall()
    )
    assert inv_versions.pop("INV-3001/1") == 2
    assert set(inv_versions.values()) == {1}
    so_versions = versions(con, "raw_sales_orders", "Sales_Order_Item_Id")
    assert so_versions.pop(i["i_support"]) == 2
    assert set(so_versions.values()) == {1}
    customer_versions = versions(con, "raw_customers", "Customer_Id")
    assert customer_versions.pop(i["initech"]) == 2
    assert set(customer_versions.values()) == {1}
    assert set(versions(con, "raw_products", "Product_Id").values()) == {1}
    units = {u.file_type: u for u in second.units}
    assert (units["invoices"].rows_new, units["invoices"].rows_changed) == (0, 1)
    assert (units["sales_orders"].rows_new, units["sales_orders"].rows_changed) == (0, 1)
    assert "products" not in units  # fetched in full, but identical: not re-mapped
    assert con.execute(
        "SELECT Customer_Name, Subsidiary_Id FROM raw_customers WHERE _is_current AND Customer_Id = ?",
        [i["initech"]],
    ).fetchall() == [("Initech Inc.", i["us"])]

    third = run_sync(con, client)
    assert third.rows_new == third.rows_changed == 0
    assert first.sync_id < second.sync_id < third.sync_id


def test_a_line_removed_from_a_rillet_invoice_bills_zero(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    seed = org_seed()
    run_sync(con, client)
    inv_2001 = next(x for x in seed["invoices"] if x["invoice_number"] == "INV-2001")
    inv_2001["items"] = inv_2001["items"][:1]
    inv_2001["updated_at"] = "2025-05-01T00:00:00Z"
    emulator.seed(invoices=[inv_2001])
    run_sync(con, client)
    rows = con.execute(
        "SELECT Invoice_Line, CAST(Billing_Amount AS VARCHAR), _source FROM raw_invoices "
        "WHERE Invoice_Number = 'INV-2001' AND _is_current ORDER BY 1"
    ).fetchall()
    assert rows == [("1", "1000.00", "rillet"), ("2", "0.00", "rillet")]
    assert versions(con, "raw_invoices", "Invoice_Number || '/' || Invoice_Line")["INV-2001/1"] == 1


def test_an_amended_item_earns_until_its_amendment_starts(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    seed = sample_seed()
    saas = seed["products"][0]
    original = contract_item(
        saas["id"],
        price=recurring_price(100_000),
        total_value_cents=1_200_000,
        start_date="2025-01-01",
        end_date="2025-12-31",
        status="AMENDED",
        external_id="AM-1",
    )
    upsell = contract_item(
        saas["id"],
        price=recurring_price(150_000),
        total_value_cents=900_000,
        start_date="2025-07-01",
        end_date="2025-12-31",
        external_id="AM-2",
    )
    upsell["amending"] = original["id"]
    amended = contract(
        "Amended deal",
        customer_id=seed["customers"][0]["id"],
        subsidiary_id=seed["subsidiaries"][0]["id"],
        start_date="2025-01-01",
        end_date="2025-12-31",
        items=[original, upsell],
    )
    emulator.seed(contracts=[amended])
    report = run_sync(con, client)
    lines = con.execute(
        "SELECT Sales_Order_Item_Id, Service_End_Date, CAST(Quantity * Sale_Price AS DECIMAL(18,2)), IsActive "
        "FROM raw_sales_orders WHERE _is_current AND Sales_Order_Id = ?",
        [amended["id"]],
    ).fetchall()
    assert sorted((str(a), str(b), str(c), d) for a, b, c, d in lines) == sorted(
        [
            (original["id"], "2025-06-30", "6000.00", True),  # 6 of its 12 months
            (upsell["id"], "2025-12-31", "9000.00", True),
        ]
    )
    assert any("AMENDED" in w and original["id"] in w for w in report.warnings)


# -- (3) a failed sync changes nothing --------------------------------------------------------------


def test_rillet_failing_past_the_retry_budget_changes_nothing(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    seed = org_seed()
    run_sync(con, client)
    inv_3001 = next(x for x in seed["invoices"] if x["invoice_number"] == "INV-3001")
    inv_3001["items"][0]["total_amount"] = money(260_000)
    inv_3001["updated_at"] = "2025-05-01T00:00:00Z"
    emulator.seed(invoices=[inv_3001])
    before = snapshot(con)

    emulator.fail_next(500, times=MAX_RETRIES + 1, path="/credit-memos")  # read after /invoices
    with pytest.raises(RilletSyncError) as failed:
        run_sync(con, client)
    assert "GET /credit-memos" in str(failed.value) and "HTTP 500" in str(failed.value)
    assert "nothing was applied" in str(failed.value).lower()
    assert snapshot(con) == before  # not a row, not a cursor

    emulator.fail_next(422, detail="cursor parameter rejected", path="/invoices")  # not retried
    with pytest.raises(RilletSyncError, match="HTTP 422"):
        run_sync(con, client)
    assert snapshot(con) == before

    run_sync(con, client)  # the cursor did not move: the change is read again and applied
    sent = updated_gt_sent(emulator, "/invoices")
    assert sent[-1] == sent[1] == "2025-04-15T08:59:00Z"
    assert con.execute(
        "SELECT Billing_Amount FROM raw_invoices WHERE _is_current AND Invoice_Number = 'INV-3001'"
    ).fetchall()[0][0] == pytest.approx(2600)


def test_an_invalid_rillet_object_fails_the_sync_naming_object_field_and_reason(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    run_sync(con, client)
    seed = org_seed()
    broken_item = contract_item(
        seed["products"][0]["id"],
        price=recurring_price(100_000),
        total_value_cents=1_200_000,
        start_date="2025-01-01",
        end_date="2024-12-31",
        external_id="BROKEN-1",
    )
    broken = contract(
        "Broken deal",
        customer_id=seed["customers"][0]["id"],
        subsidiary_id=seed["subsidiaries"][0]["id"],
        start_date="2025-01-01",
        items=[broken_item],
    )
    emulator.seed(contracts=[broken], customers=[customer("Newco", updated_at="2025-06-01T00:00:00Z")])
    before = snapshot(con)

    with pytest.raises(RilletSyncError) as failed:
        run_sync(con, client)
    message = str(failed.value)
    assert f"contract 'Broken deal' (id {broken['id']}) item 1 (id {broken_item['id']})" in message
    assert (
        "Service_End_Date (from items[].end_date, else the contract's end_date)" in message
        and "'2024-12-31'" in message
    )
    assert "is before Service_Start_Date 2025-01-01" in message
    assert "Traceback" not in message and "polars" not in message
    assert snapshot(con) == before  # the new customer, read before the contract failed, is not applied either

    orphan = invoice(
        "INV-9001",
        customer_id=seed["customers"][0]["id"],
        subsidiary_id=seed["subsidiaries"][0]["id"],
        contract_id=rillet_id("contract", "never-listed"),
        invoice_date="2025-06-01",
        items=[invoice_item(seed["products"][0]["id"], amount_cents=1_000)],
        updated_at="2025-06-01T00:00:00Z",
    )
    emulator.remove("contracts", broken["id"])
    emulator.seed(invoices=[orphan])
    with pytest.raises(
        RilletSyncError, match=r"invoice 'INV-9001' .* contract_id '.*' is not a contract Rillet listed"
    ):
        run_sync(con, client)
    assert snapshot(con) == before


# -- (4) pages and a repeated cursor ----------------------------------------------------------------


def test_every_page_is_read(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    emulator.page_size_cap = 1
    report = run_sync(con, client)
    seed = org_seed()
    for name, path in (("customers", "/customers"), ("invoices", "/invoices"), ("contracts", "/contracts")):
        pages = emulator.requests_to("GET", path)
        assert len(pages) == len(seed[name]), path  # one object a page
        assert [p.param("cursor") is None for p in pages] == [True] + [False] * (len(pages) - 1)
        assert con.execute(f"SELECT count(*) FROM rillet_{name}").fetchall()[0][0] == len(seed[name])
    assert {e.endpoint: e.complete for e in report.endpoints} == dict.fromkeys(
        (e.endpoint for e in report.endpoints), True
    )


def test_a_repeated_cursor_applies_what_was_read_and_keeps_the_cursor(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    emulator.page_size_cap = 1
    emulator.repeat_cursor("/invoices")
    report = run_sync(con, client)
    assert con.execute("SELECT count(*) FROM rillet_invoices").fetchall() == [
        (2,)
    ]  # page 1, then page 2 repeats
    assert sync_state(con)["/invoices"] == (None, False)
    assert any("repeated a pagination cursor on GET /invoices" in w for w in report.warnings)
    assert sync_state(con)["/credit-memos"] == ("2025-04-10T09:00:00Z", True)

    emulator.repeat_cursor("/invoices", enabled=False)
    run_sync(con, client)
    assert updated_gt_sent(emulator, "/invoices")[-1] is None  # still from the start
    assert con.execute("SELECT count(*) FROM rillet_invoices").fetchall() == [(4,)]
    assert sync_state(con)["/invoices"] == ("2025-04-15T09:00:00Z", True)
    # CM-2001 went in as its own contract while INV-2001 was unread; it now credits the contract line
    i = ids(org_seed())
    assert con.execute(
        "SELECT Sales_Order_Item_Id FROM raw_invoices WHERE _is_current AND Invoice_Number = 'CM-2001'"
    ).fetchall() == [(i["i_saas"],)]


# -- (5) credit memos -------------------------------------------------------------------------------


def test_a_credit_memo_is_a_negative_billing(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection
) -> None:
    i = ids(org_seed())
    run_sync(con, client)
    engine.compute(con, "USD")
    memos = con.execute(
        "SELECT Invoice_Number, CAST(Billing_Amount AS VARCHAR), Sales_Order_Item_Id FROM raw_invoices "
        "WHERE _is_current AND Invoice_Number LIKE 'CM-%' ORDER BY 1"
    ).fetchall()
    assert memos == [("CM-1001", "-500.00", None), ("CM-2001", "-200.00", i["i_saas"])]
    billing = dict(
        con.execute("SELECT Sales_Order_Item_Id, sum(New_Billing) FROM line_periods GROUP BY ALL").fetchall()
    )
    assert billing[i["i_saas"]] == 100_000 - 20_000  # INV-2001 less CM-2001, applied to it
    assert billing["CM-1001-1"] == -50_000  # unapplied: its own (negative) contract line
    revenue = dict(
        con.execute("SELECT Sales_Order_Item_Id, sum(Revenue) FROM line_periods GROUP BY ALL").fetchall()
    )
    assert revenue["CM-1001-1"] == -50_000


# -- (6) the API key --------------------------------------------------------------------------------


def test_the_api_key_never_appears_in_errors_or_the_warehouse(
    emulator: RilletEmulator,
    client: RilletClient,
    con: duckdb.DuckDBPyConnection,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts: list[str] = []
    report = run_sync(con, client)
    texts += [report.summary(), repr(report)]
    for status in (401, 500, 503):
        emulator.fail_next(status, times=MAX_RETRIES + 1, path="/customers")
        with pytest.raises(RilletSyncError) as failed:
            run_sync(con, client)
        texts += [str(failed.value), "".join(traceback.format_exception(failed.value))]
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert API_KEY not in text

    for table, column in con.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'main' "
        "AND data_type IN ('VARCHAR', 'JSON')"
    ).fetchall():
        hits = con.execute(
            f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS VARCHAR) LIKE ?', [f"%{API_KEY}%"]
        )
        assert hits.fetchall() == [(0,)], f"{table}.{column}"
    con.execute("CHECKPOINT")
    assert API_KEY.encode() not in (tmp_path / "rillet.duckdb").read_bytes()


def test_what_files_already_set_up_is_kept(
    emulator: RilletEmulator, client: RilletClient, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    """A subsidiaries file mapping our US01 to the Rillet subsidiary keeps US01 (and its Intacct location);
    an SSP set in a products file survives a Rillet change of the product; a currency with no rate to
    the home currency is reported."""
    seed = org_seed()
    i = ids(seed)
    saas = seed["products"][0]
    import_files(
        con,
        tmp_path / "setup",
        {
            "subsidiaries.csv": f"Subsidiary_Id,Subsidiary_Name,Rillet_Subsidiary_Id,Intacct_Location_Id\nUS01,Acme US,{i['us']},LOC-100\n",
        },
    )
    emulator.seed(
        contracts=[
            contract(
                "Euro deal",
                customer_id=i["globex"],
                subsidiary_id=i["us"],
                start_date="2025-01-01",
                end_date="2025-12-31",
                items=[
                    contract_item(
                        saas["id"],
                        price=recurring_price(100_000, "EUR"),
                        total_value_cents=1_200_000,
                        start_date="2025-01-01",
                        end_date="2025-12-31",
                    )
                ],
            )
        ]
    )
    report = run_sync(con, client)
    assert con.execute(
        "SELECT Subsidiary_Id, Intacct_Location_Id, _source FROM raw_subsidiaries"
    ).fetchall() == [("US01", "LOC-100", "file")]
    assert con.execute("SELECT DISTINCT Subsidiary_Id FROM raw_sales_orders").fetchall() == [("US01",)]
    assert con.execute(
        "SELECT Subsidiary_Id FROM raw_customers WHERE Customer_Id = ?", [i["globex"]]
    ).fetchall() == [("US01",)]
    assert any("EUR" in w and "exchange rate" in w for w in report.warnings)

    import_files(
        con,
        tmp_path / "ssp",
        {
            "products.csv": "Product_Id,Product_Code,Product_Name,Revenue_Rule,SSP,Class\n"
            f"{saas['id']},PROD-SAAS,Platform subscription,ratable_monthly,1100.00,SaaS\n",
        },
    )
    emulator.seed(products=[{**saas, "name": "Platform"}])
    run_sync(con, client)
    assert con.execute(
        "SELECT Product_Name, CAST(SSP AS VARCHAR), Class, _source FROM raw_products WHERE _is_current AND Product_Id = ?",
        [saas["id"]],
    ).fetchall() == [("Platform", "1100.000000", "SaaS", "rillet")]
