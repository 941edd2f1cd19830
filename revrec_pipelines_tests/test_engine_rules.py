"""Hand-computed cases through the production SQL engine (sql/revrec/*.sql driven by lib/engine.py).

Every expected value below is typed from SPEC.md §4–§6 with its arithmetic in a comment; none was
produced by running the code. Money is in integer cents in the warehouse tables (10000 = 100.00), and
as 2-decimal text in export files.

Each test drives a fresh warehouse the way production does: every `load()` writes one folder of
SPEC §2 CSV files and imports it through `importer.import_from_source` (one folder per drop, since a
folder is imported incrementally by path, size and modification time).

`Ledger` and the row helpers (`so`, `inv`, `rate`, …) are also used by test_close.py, `write_csv` by
test_engine_vs_reference.py.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from revrec_pipelines.lib import close, engine, exports, importer, sources, warehouse

HOME = "USD"
TS = "2025-06-01T00:00:00Z"

ACCOUNT_TYPES = (
    "Contra Revenue",
    "Revenue",
    "Deferred Revenue",
    "Unbilled Receivable",
    "Deferred Expense",
    "Expense Clearing",
    "Expense Recognized",
)
EXPORT_TYPES_ALL = (
    "unearned_revenue_rollforward", "revenue", "deferred_revenue_balance", "orders", "journals", "invoices",
    "control", "expenses", "revenue_backlog",
)
DEFAULT_ACCOUNTS = {
    "Contra Revenue": "4900",
    "Revenue": "4000",
    "Deferred Revenue": "2400",
    "Unbilled Receivable": "1250",
    "Deferred Expense": "1400",
    "Expense Clearing": "2150",
    "Expense Recognized": "6100",
}

# ------------------------------------------------------------------------------------------------
# harness


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    """One SPEC §2 CSV file; the header is the union of the rows' keys in first-seen order."""
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header, lineterminator="\n", restval="")
        w.writeheader()
        w.writerows(rows)


class Ledger:
    """A warehouse driven like production: import drops, compute, close, reopen, export."""

    def __init__(self, root: Path, home: str = HOME):
        self.root = root
        self.home = home
        self.con = warehouse.connect(root / "w.duckdb")
        self.drops = 0

    # -- inputs
    def load(self, **tables: list[dict[str, str]]) -> None:
        """One drop: a folder with one CSV per file type, imported as one run."""
        self.drops += 1
        folder = self.root / f"drop{self.drops:02d}"
        folder.mkdir()
        for file_type, rows in tables.items():
            write_csv(folder / f"{file_type}.csv", rows)
        report = importer.import_from_source(
            self.con, sources.LocalFolderSource(folder), incremental=True, progress=lambda _m: None
        )
        assert not report.rejected, report.failure_message()

    # -- operations
    def compute(self) -> None:
        engine.compute(self.con, self.home)

    def close(self, period: int) -> close.CloseResult:
        return close.close_period(self.con, period, home_currency=self.home, actor="test")

    def reopen(self, period: int) -> close.ReopenResult:
        return close.reopen_period(self.con, period, home_currency=self.home, actor="test")

    def export(self, period: int, folder: str = "exports") -> dict[str, str]:
        out = self.root / folder
        files = exports.write_close_exports(
            self.con, period, sources.LocalFolderDestination(out), export_timestamp=TS
        )
        return {f.type: (out / f.name).read_text(encoding="utf-8") for f in files}

    # -- reading
    def rows(self, query: str, *params: object) -> list[dict]:
        cur = self.con.execute(query, list(params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def lp(self, item: str) -> dict[int, dict]:
        """line_periods of one line, by period."""
        return {
            r["Actg_Period"]: r
            for r in self.rows("SELECT * FROM line_periods WHERE Sales_Order_Item_Id = ? ORDER BY Actg_Period", item)
        }

    def series(self, item: str, column: str) -> dict[int, int]:
        """One column of a line's rows, by period, leaving out periods where it is 0."""
        return {p: r[column] for p, r in self.lp(item).items() if r[column]}

    def journals(self, item: str, period: int) -> dict[str, int]:
        """Net debit per account type of one line and period (debit > 0, credit < 0)."""
        return {
            r["Account_Type"]: r["Net_Debit"]
            for r in self.rows(
                "SELECT Account_Type, Net_Debit FROM journal_lines WHERE Sales_Order_Item_Id = ? AND Actg_Period = ?",
                item,
                period,
            )
        }

    def order_line(self, item: str) -> dict:
        (row,) = self.rows("SELECT * FROM order_lines WHERE Sales_Order_Item_Id = ?", item)
        return row


def customers() -> list[dict[str, str]]:
    return [
        {"Customer_Id": "C1", "Customer_Name": "Acme", "Subsidiary_Id": ""},
        {"Customer_Id": "C2", "Customer_Name": "Contoso", "Subsidiary_Id": "SUB-X"},
        {"Customer_Id": "C3", "Customer_Name": "Initech", "Subsidiary_Id": "SUB-Y"},
    ]


def products() -> list[dict[str, str]]:
    def p(pid: str, code: str, name: str, rule: str, ssp: str = "", cls: str = "SaaS") -> dict[str, str]:
        return {
            "Product_Id": pid, "Product_Code": code, "Product_Name": name, "Revenue_Rule": rule, "SSP": ssp,
            "Class": cls, "Location": "NYC", "Department": "Sales",
        }

    return [
        p("P-DAY", "DAY", "Daily subscription", "ratable_daily"),
        p("P-MON", "MON", "Monthly subscription", "ratable_monthly"),
        p("P-PIT", "PIT", "Point in time", "point_in_time", cls="Services"),
        p("P-USE", "USE", "Usage", "usage", cls="Usage"),
        p("P-EQ", "EQ", "Equal SSP", "point_in_time", ssp="10.00", cls="Services"),
    ]


def mappings(overrides: dict[tuple[str, str], str] | None = None, omit: tuple[str, ...] = ()) -> list[dict[str, str]]:
    rows = [
        {"Account_Type": t, "Account_Id": a, "Account_Name": t, "Subsidiary_Id": ""}
        for t, a in DEFAULT_ACCOUNTS.items()
        if t not in omit
    ]
    for (t, sub), a in (overrides or {}).items():
        rows.append({"Account_Type": t, "Account_Id": a, "Account_Name": f"{t} {sub}", "Subsidiary_Id": sub})
    return rows


def so(
    item: str,
    product: str,
    start: str,
    end: str,
    price: str,
    *,
    order: str | None = None,
    qty: str = "1",
    order_date: str | None = None,
    currency: str = "USD",
    customer: str = "C1",
    **extra: str,
) -> dict[str, str]:
    """A sales_orders row; the order defaults to the item id, the Order_Date to the service start."""
    row = {
        "Sales_Order_Id": order or item,
        "Sales_Order_Item_Id": item,
        "Customer_Id": customer,
        "Product_Id": product,
        "Order_Date": order_date or start,
        "Quantity": qty,
        "Sale_Price": price,
        "Service_Start_Date": start,
        "Service_End_Date": end,
        "Currency": currency,
        "List_Price": "",
        "Subsidiary_Id": "",
        "IsActive": "true",
    }
    row.update(extra)
    return row


def inv(number: str, item: str, date: str, amount: str, currency: str = "USD", line: str = "1", **extra: str) -> dict[str, str]:
    row = {
        "Invoice_Number": number,
        "Invoice_Line": line,
        "Billing_Date": date,
        "Billing_Amount": amount,
        "Currency": currency,
        "Sales_Order_Id": "",
        "Sales_Order_Item_Id": item,
        "Customer_Id": "",
        "Product_Id": "",
        "Service_Start_Date": "",
        "Service_End_Date": "",
    }
    row.update(extra)
    return row


def rate(x: str, y: str, on: str, value: str) -> dict[str, str]:
    return {"From_Currency": x, "To_Currency": y, "Rate_Date": on, "Rate": value}


def base_ledger(tmp_path: Path, **overrides) -> Ledger:
    """A warehouse with the customers, products and default account mappings every test uses."""
    led = Ledger(tmp_path)
    led.load(customers=customers(), products=products(), account_mappings=overrides.pop("account_mappings", mappings()))
    return led


def csv_rows(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.strip("\n").split("\n")]


# ------------------------------------------------------------------------------------------------
# ideal revenue schedules (SPEC §4)


def test_ratable_daily_mid_month_proration(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            so("D-1", "P-DAY", "2025-01-20", "2025-04-19", "1000.00"),
            so("D-2", "P-DAY", "2025-01-31", "2025-02-01", "100.01"),
        ]
    )
    led.compute()
    # D-1: A = 100000 cents over 2025-01-20 … 2025-04-19: D = 12 (Jan 20–31) + 28 + 31 + 19 (Apr 1–19) = 90
    #   Jan round(100000 × 12 / 90) = round(13333.33) = 13333
    #   Feb round(100000 × 28 / 90) = round(31111.11) = 31111
    #   Mar round(100000 × 31 / 90) = round(34444.44) = 34444
    #   Apr (the period of the end) = 100000 − (13333 + 31111 + 34444) = 21112   (not round(21111.1))
    assert led.series("D-1", "Revenue") == {202501: 13333, 202502: 31111, 202503: 34444, 202504: 21112}
    # backlog: A booked in Jan (Order_Date = start), then run down by revenue
    #   86667 = 100000 − 13333; 55556 = 86667 − 31111; 21112 = 55556 − 34444; 0
    assert led.series("D-1", "New_Booking") == {202501: 100000}
    assert [r["Ending_Backlog"] for r in led.lp("D-1").values()] == [86667, 55556, 21112, 0]
    # D-2: A = 10001 over 2 days (Jan 31, Feb 1): Jan round(10001 × 1 / 2) = round(5000.5) = 5001 (half away
    # from zero; banker's rounding would give 5000), Feb = 10001 − 5001 = 5000
    assert led.series("D-2", "Revenue") == {202501: 5001, 202502: 5000}


def test_leap_year_february(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            so("LEAP-1", "P-DAY", "2024-02-15", "2024-03-14", "1000.00"),
            so("NOLEAP-1", "P-DAY", "2025-02-15", "2025-03-14", "1000.00"),
            so("YEAR-2024", "P-DAY", "2024-01-01", "2024-12-31", "366.00"),
        ]
    )
    led.compute()
    # 2024 is a leap year: Feb 15–29 = 15 days, Mar 1–14 = 14 days, D = 29
    #   Feb round(100000 × 15 / 29) = round(51724.14) = 51724; Mar = 100000 − 51724 = 48276
    assert led.series("LEAP-1", "Revenue") == {202402: 51724, 202403: 48276}
    # 2025: Feb 15–28 = 14 days, Mar 1–14 = 14 days, D = 28: 50000 each
    assert led.series("NOLEAP-1", "Revenue") == {202502: 50000, 202503: 50000}
    # 36600 cents over the 366 days of 2024 = 100 a day: Feb has 29 days → 2900
    expected = {202400 + m: 100 * d for m, d in enumerate([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], 1)}
    assert led.series("YEAR-2024", "Revenue") == expected
    assert sum(expected.values()) == 36600
    # the balances carry the schedule's running total (counted by month length from January of a leap year,
    # its February whole): unbilled until the contract's last period trues it up, backlog down to zero (a
    # series leaves out zeros)
    running = {p: sum(v for q, v in expected.items() if q <= p) for p in expected}
    assert led.series("YEAR-2024", "Ending_Unbilled_Receivable") == {p: c for p, c in running.items() if p < 202412}
    assert led.series("YEAR-2024", "Ending_Backlog") == {p: 36600 - c for p, c in running.items() if p < 202412}


def test_ratable_monthly_remainder_in_last_month(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            so("M-1", "P-MON", "2025-01-15", "2025-03-14", "1000.00"),
            so("M-2", "P-MON", "2025-01-31", "2025-02-01", "100.01"),
        ]
    )
    led.compute()
    # M-1 touches Jan, Feb, Mar (M = 3) whatever the days: round(100000 / 3) = 33333 each, the last
    # gets 100000 − 2 × 33333 = 33334
    assert led.series("M-1", "Revenue") == {202501: 33333, 202502: 33333, 202503: 33334}
    # M-2 touches Jan and Feb (2 days, M = 2): round(10001 / 2) = round(5000.5) = 5001, last 10001 − 5001 = 5000
    assert led.series("M-2", "Revenue") == {202501: 5001, 202502: 5000}


def test_point_in_time_all_in_the_period_of_start(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    # Quantity 3 × Sale_Price 33.335 = 100.005 → round half away from zero → 100.01 (banker's: 100.00)
    led.load(sales_orders=[so("PIT-1", "P-PIT", "2025-02-27", "2025-05-31", "33.335", qty="3", order_date="2025-01-20")])
    led.compute()
    line = led.order_line("PIT-1")
    assert (line["Bookings_Amount"], line["Allocated_Revenue"]) == (10001, 10001)
    assert led.series("PIT-1", "Revenue") == {202502: 10001}
    # booking in min(period(Order_Date) = Jan, period(start) = Feb) = Jan
    assert led.series("PIT-1", "New_Booking") == {202501: 10001}
    # rows from the booking period (Jan) to the contract's last period (May)
    assert sorted(led.lp("PIT-1")) == [202501, 202502, 202503, 202504, 202505]


# ------------------------------------------------------------------------------------------------
# allocation (SPEC §4 relative SSP, largest remainder)


def test_relative_ssp_allocation_with_remainder_tie_to_smallest_id_by_code_point(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            # order T: three lines of P-EQ (product SSP 10.00 each, so equal weights), T = 100.00
            so("T-a", "P-EQ", "2025-01-10", "2025-01-10", "50.00", order="T"),
            so("T-Z", "P-EQ", "2025-01-10", "2025-01-10", "30.00", order="T"),
            so("T-b", "P-EQ", "2025-01-10", "2025-01-10", "20.00", order="T"),
            # order R: no product SSP, so List_Price is the unit SSP (100 : 200 : 400)
            so("R-1", "P-PIT", "2025-01-10", "2025-01-10", "60.00", order="R", List_Price="100.00"),
            so("R-2", "P-PIT", "2025-01-10", "2025-01-10", "10.00", order="R", List_Price="200.00"),
            so("R-3", "P-PIT", "2025-01-10", "2025-01-10", "30.00", order="R", List_Price="400.00"),
            # order Q: product SSP for Q-1, Sale_Price for Q-2; a usage line and a cancelled line take no part
            so("Q-1", "P-EQ", "2025-01-10", "2025-01-10", "12.00", order="Q", qty="3"),
            so("Q-2", "P-PIT", "2025-01-10", "2025-01-10", "25.00", order="Q", qty="2"),
            so("Q-3", "P-USE", "2025-01-10", "2025-06-30", "5.00", order="Q"),
            so("Q-4", "P-PIT", "2025-01-10", "2025-01-10", "40.00", order="Q", IsActive="false"),
        ]
    )
    led.compute()
    alloc = {r["Sales_Order_Item_Id"]: r["Allocated_Revenue"] for r in led.rows("SELECT * FROM order_lines")}
    # T: T = 5000 + 3000 + 2000 = 10000; each share 10000 × 10 / 30 = 3333.33 → floors 3 × 3333 = 9999,
    # 1 cent left; the three remainders tie (1/3), so it goes to the smallest id by code point:
    # 'T-Z' (Z = U+005A) < 'T-a' (U+0061) < 'T-b' (U+0062)   (a case-insensitive order would pick T-a)
    assert (alloc["T-Z"], alloc["T-a"], alloc["T-b"]) == (3334, 3333, 3333)
    # R: T = 6000 + 1000 + 3000 = 10000; ΣS = 700
    #   R-1 10000 × 100 / 700 = 1428.571, R-2 × 200 / 700 = 2857.143, R-3 × 400 / 700 = 5714.286
    #   floors 1428 + 2857 + 5714 = 9999; the cent left goes to the largest remainder (.571, R-1)
    assert (alloc["R-1"], alloc["R-2"], alloc["R-3"]) == (1429, 2857, 5714)
    # Q: bookings Q-1 = 3 × 12.00 = 3600, Q-2 = 2 × 25.00 = 5000; T = 8600
    #   S: Q-1 = 3 × 10.00 (product SSP) = 30, Q-2 = 2 × 25.00 (Sale_Price) = 50; ΣS = 80
    #   Q-1 = 8600 × 30 / 80 = 3225, Q-2 = 8600 × 50 / 80 = 5375; the usage and the cancelled line get 0
    assert (alloc["Q-1"], alloc["Q-2"], alloc["Q-3"], alloc["Q-4"]) == (3225, 5375, 0, 0)
    # allocation sums to the bookings of the active non-usage lines per order
    assert sum(alloc[i] for i in ("T-a", "T-Z", "T-b")) == 10000
    assert sum(alloc[i] for i in ("R-1", "R-2", "R-3")) == 10000
    assert alloc["Q-1"] + alloc["Q-2"] == 3600 + 5000
    # the point-in-time revenue follows the allocation, not the sale price
    assert led.series("T-Z", "Revenue") == {202501: 3334}
    assert led.series("R-2", "Revenue") == {202501: 2857}


# ------------------------------------------------------------------------------------------------
# position, rollforward and adjustment (SPEC §4)


def test_unbilled_receivable_flips_to_deferred_revenue(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    # 1200.00 over Jan–Dec 2025 on ratable_monthly: 10000 a month; half of it billed on 2025-02-10
    led.load(
        sales_orders=[so("F-1", "P-MON", "2025-01-01", "2025-12-31", "1200.00")],
        invoices=[inv("F-INV", "F-1", "2025-02-10", "600.00")],
    )
    led.compute()
    rows = led.lp("F-1")
    # Jan: P = 0 + 0 − 10000 = −10000 → unbilled 10000, unearned 0 (recognized ahead of billing)
    jan = rows[202501]
    assert (jan["Revenue"], jan["New_Billing"], jan["Ending_Unearned_Revenue"], jan["Ending_Unbilled_Receivable"]) == (
        10000, 0, 0, 10000,
    )
    # Feb: P = −10000 + 60000 − 10000 = 40000 → unearned 40000, unbilled 0 (billed ahead)
    feb = rows[202502]
    assert (feb["Beginning_Unbilled_Receivable"], feb["New_Billing"], feb["Revenue"]) == (10000, 60000, 10000)
    assert (feb["Ending_Unearned_Revenue"], feb["Ending_Unbilled_Receivable"], feb["Adjustment_To_Unearned_Revenue"]) == (
        40000, 0, 0,
    )
    # Mar–Nov: P falls by 10000 a month: 30000, 20000, 10000, 0 (Jun), then unbilled 10000 … 50000 (Nov)
    assert [rows[p]["Ending_Unearned_Revenue"] for p in range(202503, 202507)] == [30000, 20000, 10000, 0]
    assert [rows[p]["Ending_Unbilled_Receivable"] for p in range(202507, 202512)] == [10000, 20000, 30000, 40000, 50000]
    # Dec is the contract's last period: P_pre = −50000 − 10000 = −60000, Adjustment = +60000, P = 0
    dec = rows[202512]
    assert (dec["Adjustment_To_Unearned_Revenue"], dec["Ending_Unearned_Revenue"], dec["Ending_Unbilled_Receivable"]) == (
        60000, 0, 0,
    )
    assert sum(r["Adjustment_To_Unearned_Revenue"] for r in rows.values()) == 60000
    # journals (USD line, home USD):
    #   Jan: Revenue −10000; Unbilled Receivable ΔUR = 10000 − 0 = +10000; nothing else
    assert led.journals("F-1", 202501) == {"Revenue": -10000, "Unbilled Receivable": 10000}
    #   Feb: Contra Revenue = 60000 + 0 + 0; Revenue −10000; Deferred Revenue −ΔDR = −(40000 − 0);
    #        Unbilled Receivable ΔUR = 0 − 10000; sum 60000 − 10000 − 40000 − 10000 = 0
    assert led.journals("F-1", 202502) == {
        "Contra Revenue": 60000, "Revenue": -10000, "Deferred Revenue": -40000, "Unbilled Receivable": -10000,
    }
    #   Dec: Contra Revenue = 0 + 0 + 60000; Revenue −10000; Unbilled ΔUR = 0 − 50000
    assert led.journals("F-1", 202512) == {"Contra Revenue": 60000, "Revenue": -10000, "Unbilled Receivable": -50000}


def test_contract_last_period_is_the_latest_end_of_the_order_any_status(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            so("W-1", "P-PIT", "2025-01-10", "2025-01-10", "100.00", order="W"),
            # a cancelled line still sets the contract's last period (April)
            so("W-2", "P-PIT", "2025-01-10", "2025-04-30", "80.00", order="W", IsActive="false"),
        ],
        invoices=[inv("W-INV", "W-1", "2025-01-10", "50.00")],
    )
    led.compute()
    rows = led.lp("W-1")
    # W-1 (allocation = its booking 10000, W-2 being cancelled): Jan P = 5000 − 10000 = −5000, and no
    # adjustment before April although W-1's own service ended in January
    assert sorted(rows) == [202501, 202502, 202503, 202504]
    assert [rows[p]["Ending_Unbilled_Receivable"] for p in (202501, 202502, 202503)] == [5000, 5000, 5000]
    assert [rows[p]["Adjustment_To_Unearned_Revenue"] for p in (202501, 202502, 202503)] == [0, 0, 0]
    # April, the contract's last period: P_pre = −5000 → Adjustment +5000, P = 0
    assert (rows[202504]["Adjustment_To_Unearned_Revenue"], rows[202504]["Ending_Unbilled_Receivable"]) == (5000, 0)


def test_billing_after_service_end_is_adjusted_in_its_period(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    # 200.00 over Jan–Feb 2025 (10000 a month), billed only on 2025-04-10, after the service end
    led.load(
        sales_orders=[so("A-1", "P-MON", "2025-01-01", "2025-02-28", "200.00")],
        invoices=[inv("A-INV", "A-1", "2025-04-10", "200.00")],
    )
    led.compute()
    rows = led.lp("A-1")
    # rows run to the latest of the contract's last period (Feb) and the last event (Apr)
    assert sorted(rows) == [202501, 202502, 202503, 202504]
    # Jan: P = −10000 (unbilled); Feb (the contract's last period): P_pre = −20000, Adjustment +20000, P = 0
    assert rows[202501]["Ending_Unbilled_Receivable"] == 10000
    assert rows[202502]["Adjustment_To_Unearned_Revenue"] == 20000
    assert (rows[202502]["Ending_Unbilled_Receivable"], rows[202502]["Ending_Unearned_Revenue"]) == (0, 0)
    # Mar: nothing happens (P_pre = 0, Adjustment 0)
    mar = rows[202503]
    assert (mar["New_Billing"], mar["Revenue"], mar["Adjustment_To_Unearned_Revenue"], mar["Ending_Unearned_Revenue"]) == (
        0, 0, 0, 0,
    )
    # Apr ≥ the contract's last period: P_pre = 0 + 20000 = 20000, Adjustment = −20000, P = 0
    apr = rows[202504]
    assert (apr["New_Billing"], apr["Revenue"], apr["Adjustment_To_Unearned_Revenue"]) == (20000, 0, -20000)
    assert (apr["Ending_Unearned_Revenue"], apr["Ending_Unbilled_Receivable"]) == (0, 0)
    # journals: Feb Contra Revenue = 0 + 0 + 20000, Revenue −10000, Unbilled ΔUR = 0 − 10000
    assert led.journals("A-1", 202502) == {"Contra Revenue": 20000, "Revenue": -10000, "Unbilled Receivable": -10000}
    # Apr: Contra Revenue = 20000 + 0 − 20000 = 0, every other account 0: no journal lines at all
    assert led.journals("A-1", 202504) == {}


def test_credit_memo_is_a_negative_invoice(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    # 300.00 over Jan–Mar 2025 (10000 a month), billed 300.00 on Jan 1, credited 50.00 on Feb 15
    led.load(
        sales_orders=[so("CM-1", "P-MON", "2025-01-01", "2025-03-31", "300.00")],
        invoices=[inv("CM-INV", "CM-1", "2025-01-01", "300.00"), inv("CM-CRED", "CM-1", "2025-02-15", "-50.00")],
    )
    led.compute()
    rows = led.lp("CM-1")
    # Jan: P = 30000 − 10000 = 20000; Feb: P = 20000 − 5000 − 10000 = 5000
    # Mar (last): P_pre = 5000 − 10000 = −5000, Adjustment +5000, P = 0
    assert [rows[p]["New_Billing"] for p in (202501, 202502, 202503)] == [30000, -5000, 0]
    assert [rows[p]["Ending_Unearned_Revenue"] for p in (202501, 202502, 202503)] == [20000, 5000, 0]
    assert rows[202503]["Adjustment_To_Unearned_Revenue"] == 5000
    # Feb journals: Contra Revenue −5000 (a credit), Revenue −10000, Deferred Revenue −(5000 − 20000) = +15000
    assert led.journals("CM-1", 202502) == {"Contra Revenue": -5000, "Revenue": -10000, "Deferred Revenue": 15000}
    # the invoices export of Feb shows the credit memo with its own (negative) amount
    led.close(202501)
    led.close(202502)
    files = led.export(202502)
    assert csv_rows(files["invoices"])[1:] == [
        ["202502", "CM-1", "CM-1", "CM-CRED", *[""] * 9, "2025-02-15", "-50.00", "USD"],
    ]


# ------------------------------------------------------------------------------------------------
# currencies (SPEC §4 Events, Rates, Home currency)


def test_foreign_currency_invoice_books_fx_change(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        exchange_rates=[
            rate("EUR", "USD", "2025-01-01", "1.10"),
            rate("EUR", "USD", "2025-02-01", "1.20"),
            # GBP→USD only as its inverse USD→GBP: 1 / 0.96 = 25/24 exactly
            rate("USD", "GBP", "2025-01-01", "0.96"),
        ],
        sales_orders=[
            so("X-1", "P-MON", "2025-01-01", "2025-02-28", "1100.00", order_date="2025-01-10"),
            so("X-2", "P-PIT", "2025-01-10", "2025-01-10", "1543.13"),
            so("X-3", "P-PIT", "2025-01-10", "2025-01-10", "625.63", currency="EUR"),
        ],
        invoices=[
            inv("X-INV", "X-1", "2025-02-03", "1000.00", currency="EUR"),
            inv("X-INV2", "X-2", "2025-01-20", "1481.40", currency="GBP"),
            inv("X-INV3", "X-3", "2025-01-20", "660.66", currency="GBP"),
        ],
    )
    led.compute()
    rows = led.lp("X-1")
    # X-1 (USD line): 55000 a month. Invoice 1000.00 EUR on 2025-02-03:
    #   at the invoice-date rate (1.20, dated 2025-02-01): 100000 × 1.20 = 120000 = New_Billing (Feb)
    #   at the Order_Date rate (1.10, 2025-01-10):        100000 × 1.10 = 110000
    #   Foreign_Currency_Change = 110000 − 120000 = −10000
    assert (rows[202502]["New_Billing"], rows[202502]["Foreign_Currency_Change"]) == (120000, -10000)
    # Jan P = −55000; Feb P_pre = −55000 + 120000 − 10000 − 55000 = 0 → Adjustment 0
    assert rows[202501]["Ending_Unbilled_Receivable"] == 55000
    assert rows[202502]["Adjustment_To_Unearned_Revenue"] == 0
    assert (rows[202502]["Ending_Unearned_Revenue"], rows[202502]["Ending_Unbilled_Receivable"]) == (0, 0)
    # Feb journals: Contra Revenue = 120000 − 10000 + 0 = 110000; Revenue −55000; Unbilled 0 − 55000
    assert led.journals("X-1", 202502) == {"Contra Revenue": 110000, "Revenue": -55000, "Unbilled Receivable": -55000}
    # 1481.40 GBP at GBP→USD = 1 / 0.96 = 25/24 (exact): 148140 × 25 / 24 = 154312.5 → 154313
    # (half away from zero; a rate rounded down, or a float division, gives 154312)
    x2 = led.lp("X-2")[202501]
    assert (x2["New_Billing"], x2["Foreign_Currency_Change"], x2["Adjustment_To_Unearned_Revenue"]) == (154313, 0, 0)
    # a GBP invoice on a EUR line. No GBP/EUR quote either way, so through the home currency:
    #   GBP→USD = 1 / 0.96 = 25/24 (inverse), USD→EUR = 1 / 1.10 = 10/11 (inverse); product 250/264 = 125/132
    #   66066 × 125 / 132 = 62562.5 → 62563 EUR cents (exact product; legs rounded to 12 decimals give 62562)
    x3 = led.lp("X-3")[202501]
    assert (x3["New_Billing"], x3["Foreign_Currency_Change"], x3["Adjustment_To_Unearned_Revenue"]) == (62563, 0, 0)
    # the invoices register keeps the invoice's own amount and currency
    register = {
        r["Invoice_Number"]: (r["Actg_Period"], r["Billing_Amount"], r["Currency"])
        for r in led.rows("SELECT * FROM invoice_register")
    }
    assert register == {
        "X-INV": (202502, 100000, "EUR"), "X-INV2": (202501, 148140, "GBP"), "X-INV3": (202501, 66066, "GBP"),
    }


def test_foreign_currency_line_posts_home_currency_journals(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        exchange_rates=[
            rate("USD", "GBP", "2025-01-01", "0.80"),  # inverse only: GBP→USD = 1 / 0.80 = 1.25
            rate("EUR", "USD", "2025-01-01", "1.05"),
            rate("EUR", "USD", "2025-02-01", "1.08"),
            rate("EUR", "USD", "2025-03-01", "1.50"),
        ],
        sales_orders=[
            so("G-1", "P-PIT", "2025-02-10", "2025-03-31", "100.02", currency="GBP", order_date="2025-02-01"),
            so("E-1", "P-MON", "2025-02-01", "2025-03-31", "1000.00", currency="EUR", order_date="2025-02-14"),
        ],
        invoices=[
            inv("G-INV", "G-1", "2025-03-05", "100.02", currency="GBP"),
            inv("E-INV", "E-1", "2025-03-01", "1000.00", currency="EUR"),
        ],
    )
    led.compute()
    g = led.lp("G-1")
    # G-1: 10002 GBP point in time in Feb; r = GBP→USD on 2025-02-01 = 1.25
    #   Revenue_Home = round(10002 × 1.25) = round(12502.5) = 12503 (half away from zero)
    assert (g[202502]["Revenue"], g[202502]["Revenue_Home"]) == (10002, 12503)
    assert g[202502]["Ending_Unbilled_Home"] == 12503
    assert (g[202503]["New_Billing"], g[202503]["New_Billing_Home"], g[202503]["Adjustment_Home"]) == (10002, 12503, 0)
    # journals are in home currency: Feb Revenue −12503 / Unbilled +12503; Mar Contra +12503 / Unbilled −12503
    assert led.journals("G-1", 202502) == {"Revenue": -12503, "Unbilled Receivable": 12503}
    assert led.journals("G-1", 202503) == {"Contra Revenue": 12503, "Unbilled Receivable": -12503}
    # E-1: one rate per line, EUR→USD on its Order_Date 2025-02-14 = 1.08 (latest Rate_Date ≤ the date),
    # for every period, so March does not use 1.50:
    #   revenue 50000 EUR a month → round(50000 × 1.08) = 54000 USD; billing 100000 → 108000 USD
    e = led.lp("E-1")
    assert [e[p]["Revenue_Home"] for p in (202502, 202503)] == [54000, 54000]
    assert e[202503]["New_Billing_Home"] == 108000
    # Mar: home P_pre = −54000 + 108000 − 54000 = 0; Contra +108000, Revenue −54000, Unbilled −54000
    assert led.journals("E-1", 202503) == {"Contra Revenue": 108000, "Revenue": -54000, "Unbilled Receivable": -54000}
    currencies = {r["Currency"] for r in led.rows("SELECT DISTINCT Currency FROM journal_lines")}
    assert currencies == {"USD"}


def test_held_line_waits_for_its_rate_then_catches_up_in_the_first_open_period(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[so("U-1", "P-MON", "2025-01-01", "2025-03-31", "300.00")],
        invoices=[inv("U-INV", "U-1", "2025-01-01", "300.00")],
    )
    led.close(202501)
    led.close(202502)
    # a CHF line arrives after February is closed, with no CHF rate at all
    led.load(
        sales_orders=[so("H-1", "P-MON", "2025-01-01", "2025-04-30", "400.00", currency="CHF", order_date="2025-01-05")],
        invoices=[inv("H-INV", "H-1", "2025-01-05", "400.00", currency="CHF")],
    )
    led.compute()
    held = led.rows("SELECT * FROM held_lines")
    assert [(h["Sales_Order_Item_Id"], h["From_Currency"], h["To_Currency"]) for h in held] == [("H-1", "CHF", "USD")]
    # a held line is left out of every table that feeds journals and exports
    for table in ("line_periods", "journal_lines", "invoice_register", "orders"):
        assert led.rows(f"SELECT * FROM {table} WHERE Sales_Order_Item_Id = 'H-1'") == [], table
    # and no period closes while it is held; the refusal names the currency pair and the line
    with pytest.raises(close.CloseRefused) as refused:
        led.close(202503)
    assert "CHF→USD" in str(refused.value) and "H-1" in str(refused.value)
    # the rate arrives (CHF→USD 0.90 from 2025-01-01)
    led.load(exchange_rates=[rate("CHF", "USD", "2025-01-01", "0.90")])
    led.compute()
    assert led.rows("SELECT * FROM held_lines") == []
    rows = led.lp("H-1")
    # Jan and Feb are closed: the line's first row is March = O, which reports cumulative through O
    #   Revenue 3 × 10000 = 30000; New_Billing 40000 (invoiced 2025-01-05); New_Booking 40000 (booked in Jan)
    #   P = 40000 − 30000 = 10000 → unearned 10000; backlog 40000 − 30000 = 10000
    assert sorted(rows) == [202503, 202504]
    mar = rows[202503]
    assert (mar["Revenue"], mar["New_Billing"], mar["New_Booking"]) == (30000, 40000, 40000)
    assert (mar["Ending_Unearned_Revenue"], mar["Ending_Backlog"]) == (10000, 10000)
    # home: r = 0.90 → each month round(10000 × 0.9) = 9000, so 3 × 9000 = 27000; billing 36000
    assert (mar["Revenue_Home"], mar["New_Billing_Home"]) == (27000, 36000)
    assert led.journals("H-1", 202503) == {"Contra Revenue": 36000, "Revenue": -27000, "Deferred Revenue": -9000}
    # Apr (the contract's last period): 10000 revenue, P_pre = 10000 − 10000 = 0
    assert (rows[202504]["Revenue"], rows[202504]["Adjustment_To_Unearned_Revenue"]) == (10000, 0)
    # the late invoice is reported in O with its own amount and currency
    reg = led.rows("SELECT Actg_Period, Billing_Amount, Currency FROM invoice_register WHERE Invoice_Number = 'H-INV'")
    assert reg == [{"Actg_Period": 202503, "Billing_Amount": 40000, "Currency": "CHF"}]
    led.close(202503)
    files = led.export(202503)
    assert "H-1,MON,Monthly subscription,2025-01-05,CHF,C1,300.00" in files["revenue"]


# ------------------------------------------------------------------------------------------------
# commissions (SPEC §4 Events, Deferred expense)


def test_commission_paid_after_service_start_catches_up_amortization(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            so("K-1", "P-DAY", "2025-01-01", "2025-04-30", "1200.00"),
            so("K-2", "P-USE", "2025-01-01", "2025-12-31", "0"),
        ],
        commissions=[
            {"Sales_Order_Item_Id": "K-1", "Commission_Date": "2025-03-10", "Amount": "120.00"},
            {"Sales_Order_Item_Id": "K-2", "Commission_Date": "2025-02-20", "Amount": "50.00"},
        ],
    )
    led.compute()
    # K-1: 12000 amortized ratable_daily over Jan 1 – Apr 30 (D = 31 + 28 + 31 + 30 = 120, 100 a day):
    #   Jan 3100, Feb 2800, Mar 3100, Apr 12000 − 9000 = 3000; paid in March, so Jan and Feb are caught up
    #   in March: Mar 3100 + 2800 + 3100 = 9000, Apr 3000
    assert led.series("K-1", "New_Commissions") == {202503: 12000}
    assert led.series("K-1", "Commission_Amortization") == {202503: 9000, 202504: 3000}
    rows = led.lp("K-1")
    assert [(rows[p]["Beginning_Deferred_Expense"], rows[p]["Ending_Deferred_Expense"]) for p in (202503, 202504)] == [
        (0, 3000), (3000, 0),
    ]
    # Mar journals: Deferred Expense 12000 − 9000 = +3000, Expense Clearing −12000, Expense Recognized +9000
    j = led.journals("K-1", 202503)
    assert (j["Deferred Expense"], j["Expense Clearing"], j["Expense Recognized"]) == (3000, -12000, 9000)
    # Apr: Deferred Expense 0 − 3000, Expense Recognized +3000
    j = led.journals("K-1", 202504)
    assert (j["Deferred Expense"], j["Expense Recognized"]) == (-3000, 3000)
    assert "Expense Clearing" not in j
    # K-2 is a usage line: its commission is expensed at once, in its own period
    assert led.series("K-2", "Commission_Amortization") == {202502: 5000}
    assert led.journals("K-2", 202502) == {"Expense Clearing": -5000, "Expense Recognized": 5000}


def test_usage_line_commission_is_expensed_at_once_even_before_service_start(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    # a usage line starting in April; its commission is paid at signing, on 2025-02-20
    led.load(
        sales_orders=[so("K-3", "P-USE", "2025-04-01", "2025-12-31", "0", order_date="2025-02-15")],
        commissions=[{"Sales_Order_Item_Id": "K-3", "Commission_Date": "2025-02-20", "Amount": "30.00"}],
    )
    led.compute()
    # SPEC §4: "a usage line expenses it at once" — all 3000 in the commission's own period (Feb),
    # not in the period of the service start (Apr); the deferred expense never builds up
    assert led.series("K-3", "New_Commissions") == {202502: 3000}
    assert led.series("K-3", "Commission_Amortization") == {202502: 3000}
    assert led.series("K-3", "Ending_Deferred_Expense") == {}


def test_home_currency_commission_catch_up_after_a_rate_revision(tmp_path: Path) -> None:
    """A revised rate changes a closed line's home commission series only: the difference lands in O."""
    led = base_ledger(tmp_path)
    led.load(
        exchange_rates=[rate("EUR", "USD", "2025-01-01", "1.10")],
        # a EUR usage line (no usage yet) ending in February, with a commission of 100.00 EUR in January
        sales_orders=[so("K-9", "P-USE", "2025-01-01", "2025-02-28", "0", currency="EUR")],
        commissions=[{"Sales_Order_Item_Id": "K-9", "Commission_Date": "2025-01-10", "Amount": "100.00"}],
    )
    led.close(202501)
    led.close(202502)
    # January reported home commissions = amortization = round(10000 × 1.10) = 11000 (expensed at once)
    assert led.journals("K-9", 202501) == {"Expense Clearing": -11000, "Expense Recognized": 11000}
    # the EUR→USD quote of 2025-01-01 is revised to 1.20 (same key): K-9's home rate r becomes 1.20
    led.load(exchange_rates=[rate("EUR", "USD", "2025-01-01", "1.20")])
    led.compute()
    # SPEC §4: the freeze rule applies to each home-currency series too. In March (O):
    #   New_Commissions_Home = current cumulative round(10000 × 1.20) = 12000 − frozen 11000 = 1000
    #   Commission_Amortization_Home = 12000 − 11000 = 1000   (line-currency series: no change)
    # so March reports Expense Clearing −1000 / Expense Recognized +1000, although March is after the
    # line's last period (its row exists because something in it is non-zero)
    mar = led.lp("K-9").get(202503)
    assert mar is not None, "the home-currency catch-up in 202503 is missing"
    assert (mar["New_Commissions_Home"], mar["Commission_Amortization_Home"]) == (1000, 1000)
    assert (mar["New_Commissions"], mar["Commission_Amortization"]) == (0, 0)
    assert led.journals("K-9", 202503) == {"Expense Clearing": -1000, "Expense Recognized": 1000}


# ------------------------------------------------------------------------------------------------
# invoice-as-contract, cancellation


def test_invoice_as_contract_line(tmp_path: Path) -> None:
    led = base_ledger(tmp_path, account_mappings=mappings({("Revenue", "SUB-X"): "4001"}))
    led.load(
        invoices=[
            # no Sales_Order_Item_Id and no service dates: a one-off on its billing date
            inv("INV-9", "", "2025-02-14", "250.00", Customer_Id="C2", Product_Id="P-PIT"),
            # with a service period on a ratable product
            inv("INV-10", "", "2025-03-01", "300.00", line="2", Customer_Id="C1", Product_Id="P-MON",
                Service_Start_Date="2025-03-01", Service_End_Date="2025-05-31"),
        ]
    )
    led.compute()
    line = led.order_line("INV-9-1")
    # its own order line <Invoice_Number>-<Invoice_Line>, booking = allocation = the billed amount,
    # Order_Date and both service ends = the billing date, subsidiary from its customer (C2 → SUB-X)
    assert (line["Sales_Order_Id"], line["Reference_Invoice_Number"]) == ("INV-9-1", "INV-9")
    assert (line["Bookings_Amount"], line["Allocated_Revenue"]) == (25000, 25000)
    assert str(line["Order_Date"]) == str(line["Service_Start_Date"]) == str(line["Service_End_Date"]) == "2025-02-14"
    assert line["Subsidiary_Id"] == "SUB-X"
    feb = led.lp("INV-9-1")[202502]
    assert (feb["Revenue"], feb["New_Billing"], feb["Ending_Unearned_Revenue"], feb["Adjustment_To_Unearned_Revenue"]) == (
        25000, 25000, 0, 0,
    )
    # INV-10-2: 30000 over Mar–May, 10000 a month, billed upfront: unearned 20000, 10000, 0
    assert led.series("INV-10-2", "Revenue") == {202503: 10000, 202504: 10000, 202505: 10000}
    assert [r["Ending_Unearned_Revenue"] for r in led.lp("INV-10-2").values()] == [20000, 10000, 0]
    # journals: Contra Revenue on the default account, Revenue on SUB-X's own account
    accounts = {
        r["Account_Type"]: (r["Account_Id"], r["Net_Debit"])
        for r in led.rows("SELECT * FROM journal_lines WHERE Sales_Order_Item_Id = 'INV-9-1'")
    }
    assert accounts == {"Contra Revenue": ("4900", 25000), "Revenue": ("4001", -25000)}
    led.close(202502)
    files = led.export(202502)
    # orders: Quantity 1, Sale_Price = the billed amount, empty List_Price, Reference_Invoice_Number;
    # Duration of 2025-02-14 … 2025-02-14: end + 1 day = 02-15, k = 0, 1 day / 28 (Feb 2025) = 0.0357 → 0.04;
    # MRR 0.00 (point in time). INV-10-2 (Order_Date 2025-03-01) is after February: not listed.
    assert files["orders"].split("\n")[1:] == [
        "202502,INV-9-1,INV-9-1,P-PIT,C2,2025-02-14,250.00,1,,250,250.00,true,2025-02-14,2025-02-14,0.00,0.04,USD,INV-9",
        "",
    ]
    assert files["unearned_revenue_rollforward"].split("\n")[1:] == [
        "202502,INV-9,INV-9-1,INV-9-1,PIT,Point in time,2025-02-14,USD,C2,0.00,250.00,250.00,250.00,0.00,0.00,0.00,0.00,0.00",
        "",
    ]


def test_cancelled_line_after_close_reverses_in_the_first_open_period(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    # 400.00 over Jan–Apr 2025 (10000 a month), billed upfront on Jan 2
    led.load(
        sales_orders=[so("Z-1", "P-MON", "2025-01-01", "2025-04-30", "400.00")],
        invoices=[inv("Z-INV", "Z-1", "2025-01-02", "400.00")],
    )
    led.close(202501)
    led.close(202502)
    feb_export = led.export(202502)
    led.load(sales_orders=[so("Z-1", "P-MON", "2025-01-01", "2025-04-30", "400.00", IsActive="false")])
    led.compute()
    rows = led.lp("Z-1")
    assert led.order_line("Z-1")["Allocated_Revenue"] == 0
    # Jan and Feb keep what they reported: 10000 revenue each, unearned 30000 then 20000
    assert [(rows[p]["Revenue"], rows[p]["Ending_Unearned_Revenue"]) for p in (202501, 202502)] == [
        (10000, 30000), (10000, 20000),
    ]
    # Mar = O: Revenue = current cumulative through Mar (0) − frozen cumulative (20000) = −20000
    #   New_Booking = 0 − 40000 = −40000; backlog 20000 − 40000 − (−20000) = 0
    #   P = 20000 + 0 + 0 − (−20000) = 40000 (not the contract's last period: no adjustment yet)
    mar = rows[202503]
    assert (mar["Revenue"], mar["New_Billing"], mar["New_Booking"]) == (-20000, 0, -40000)
    assert (mar["Beginning_Backlog"], mar["Ending_Backlog"]) == (20000, 0)
    assert (mar["Beginning_Unearned_Revenue"], mar["Ending_Unearned_Revenue"], mar["Adjustment_To_Unearned_Revenue"]) == (
        20000, 40000, 0,
    )
    # Apr (the contract's last period): Revenue 0, P_pre = 40000 → Adjustment −40000, P = 0
    apr = rows[202504]
    assert (apr["Revenue"], apr["Adjustment_To_Unearned_Revenue"], apr["Ending_Unearned_Revenue"]) == (0, -40000, 0)
    # journals: Mar Revenue +20000 (a debit: revenue reversed), Deferred Revenue −(40000 − 20000) = −20000
    assert led.journals("Z-1", 202503) == {"Revenue": 20000, "Deferred Revenue": -20000}
    # Apr: Contra Revenue = 0 + 0 − 40000, Deferred Revenue −(0 − 40000) = +40000
    assert led.journals("Z-1", 202504) == {"Contra Revenue": -40000, "Deferred Revenue": 40000}
    # Σ revenue over all periods = the allocation, now 0
    assert sum(r["Revenue"] for r in rows.values()) == 0
    led.close(202503)
    files = led.export(202503)
    # orders: IsActive false, Allocated_Revenue 0.00 and MRR 0.00; Bookings_Amount stays 1 × 400.00;
    # Duration 2025-01-01 … 2025-04-30: end + 1 day = 05-01 = start + 4 months → 4.00
    assert files["orders"].split("\n")[1] == (
        "202503,Z-1,Z-1,P-MON,C1,2025-01-01,400.00,1,,400,0.00,false,2025-01-01,2025-04-30,0.00,4.00,USD,"
    )
    assert "202503,,Z-1,Z-1,MON,Monthly subscription,2025-01-01,USD,C1,-200.00" in files["revenue"]
    # the export of the closed February did not change
    assert led.export(202502, folder="again") == feb_export


# ------------------------------------------------------------------------------------------------
# journals (SPEC §4 Journals, account mappings)


def test_every_account_type_balances_per_period_and_subsidiary(tmp_path: Path) -> None:
    led = base_ledger(
        tmp_path,
        account_mappings=mappings(
            {("Revenue", "SUB-X"): "4001", ("Deferred Revenue", "SUB-X"): "2401", ("Contra Revenue", "SUB-Y"): "4901"}
        ),
    )
    led.load(
        sales_orders=[
            so("J-1", "P-MON", "2025-01-01", "2025-12-31", "1200.00"),  # C1: no subsidiary
            so("J-2", "P-MON", "2025-01-01", "2025-03-31", "300.00", customer="C2"),  # SUB-X via its customer
            # C2's line with its own Subsidiary_Id SUB-Y, which overrides the customer's SUB-X
            so("J-3", "P-PIT", "2025-01-15", "2025-01-15", "100.00", customer="C2", Subsidiary_Id="SUB-Y"),
        ],
        invoices=[
            inv("J-INV1", "J-1", "2025-02-10", "600.00"),
            inv("J-INV2", "J-2", "2025-01-01", "300.00"),
            inv("J-INV3", "J-3", "2025-01-15", "100.00"),
        ],
        commissions=[{"Sales_Order_Item_Id": "J-1", "Commission_Date": "2025-03-10", "Amount": "120.00"}],
    )
    led.compute()
    journal = led.rows("SELECT * FROM journal_lines")
    assert {j["Account_Type"] for j in journal} == set(ACCOUNT_TYPES)
    # debits = credits per period and subsidiary (a line-period balances by construction, so the sums do)
    net: dict[tuple, int] = defaultdict(int)
    debits: dict[tuple, int] = defaultdict(int)
    for j in journal:
        net[(j["Actg_Period"], j["Subsidiary_Id"])] += j["Net_Debit"]
        debits[(j["Actg_Period"], j["Subsidiary_Id"])] += max(j["Net_Debit"], 0)
    assert all(v == 0 for v in net.values()), net
    assert {k[1] for k in net} == {None, "SUB-X", "SUB-Y"}

    def accounts(item: str, period: int) -> dict[str, tuple[str, int]]:
        return {
            j["Account_Type"]: (j["Account_Id"], j["Net_Debit"])
            for j in journal
            if j["Sales_Order_Item_Id"] == item and j["Actg_Period"] == period
        }

    # J-2 (SUB-X) Jan: billed 30000, revenue 10000, unearned 20000:
    #   Contra Revenue +30000 (no SUB-X mapping → default 4900), Revenue −10000 (SUB-X's 4001),
    #   Deferred Revenue −20000 (SUB-X's 2401); SUB-X's debits in Jan = 30000 = its credits 10000 + 20000
    assert accounts("J-2", 202501) == {
        "Contra Revenue": ("4900", 30000), "Revenue": ("4001", -10000), "Deferred Revenue": ("2401", -20000),
    }
    assert debits[(202501, "SUB-X")] == 30000
    # J-3 (SUB-Y, by the line's own Subsidiary_Id) Jan: billed = recognized = 10000:
    #   Contra Revenue +10000 on SUB-Y's 4901, Revenue −10000 on the default 4000 (SUB-Y has no Revenue row)
    assert accounts("J-3", 202501) == {"Contra Revenue": ("4901", 10000), "Revenue": ("4000", -10000)}
    # J-1 (no subsidiary) Mar: revenue 10000 (unearned 40000 → 30000), commission 12000 amortized
    # ratable_monthly over 12 months = 1000 a month, Jan–Mar caught up in March = 3000
    assert accounts("J-1", 202503) == {
        "Revenue": ("4000", -10000),
        "Deferred Revenue": ("2400", 10000),
        "Deferred Expense": ("1400", 12000 - 3000),
        "Expense Clearing": ("2150", -12000),
        "Expense Recognized": ("6100", 3000),
    }
    j1 = [j for j in journal if j["Sales_Order_Item_Id"] == "J-1" and j["Actg_Period"] == 202503]
    assert {j["Subsidiary_Id"] for j in j1} == {None}
    assert {j["Class"] for j in j1} == {"SaaS"}
    assert sorted(j["Link_Id"] for j in j1) == sorted(f"202503_{t}" for t in accounts("J-1", 202503))
    led.close(202501)
    journals_csv = led.export(202501)["journals"]
    # Credit_Amount / Debit_Amount columns, Account_Id of the line's subsidiary, home currency
    assert "202501,J-2,J-2,4001,P-MON,C2,202501_Revenue,SaaS,Revenue,100.00,0.00,USD" in journals_csv
    assert "202501,J-3,J-3,4901,P-PIT,C2,202501_Contra Revenue,Services,Contra Revenue,0.00,100.00,USD" in journals_csv


# ------------------------------------------------------------------------------------------------
# orders export: Duration and MRR (SPEC §6)


def test_duration_and_mrr_in_orders_export(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            so("O-1", "P-DAY", "2025-01-15", "2026-01-14", "12000.00"),
            so("O-2", "P-MON", "2025-01-31", "2025-02-27", "300.00"),
            so("O-3", "P-MON", "2025-01-10", "2025-03-24", "1000.00"),
            so("O-4", "P-DAY", "2025-01-31", "2025-03-30", "500.00"),
            so("O-5", "P-PIT", "2025-01-20", "2025-01-20", "100.00"),
            so("O-6", "P-USE", "2025-01-01", "2025-12-31", "0.05", qty="1000"),
            so("O-7", "P-DAY", "2024-01-20", "2024-02-09", "100.00"),
            so("O-8", "P-MON", "2024-02-01", "2024-02-14", "290.00"),
            so("O-9", "P-PIT", "2025-01-05", "2025-01-05", "19.999", qty="2.5", List_Price="25.5"),
        ]
    )
    led.close(202501)
    got = led.export(202501)["orders"].split("\n")
    head = "Actg_Period,Sales_Order_Id,Sales_Order_Item_Id,Product_Id,Customer_Id,Order_Date,Bookings_Amount,Quantity,"
    head += "List_Price,Sale_Price,Allocated_Revenue,IsActive,Service_Start_Date,Service_End_Date,MRR,Duration,Currency,"
    head += "Reference_Invoice_Number"
    assert got == [
        head,
        # 2025-01-15 … 2026-01-14: end + 1 = 2026-01-15 = start + 12 months → 12.00; MRR 12000.00 / 12 = 1000.00
        "202501,O-1,O-1,P-DAY,C1,2025-01-15,12000.00,1,,12000,12000.00,true,2025-01-15,2026-01-14,1000.00,12.00,USD,",
        # 2025-01-31 … 2025-02-27: end + 1 = 02-28; Jan 31 + 1 month = Feb 28 (day clamped) ≤ 02-28 → k = 1,
        # 0 days left → 1.00; MRR 300.00
        "202501,O-2,O-2,P-MON,C1,2025-01-31,300.00,1,,300,300.00,true,2025-01-31,2025-02-27,300.00,1.00,USD,",
        # 2025-01-10 … 2025-03-24: end + 1 = 03-25; k = 2 (03-10 ≤ 03-25 < 04-10); 15 days left from 03-10,
        # over March's 31 → 2 + 15/31 = 2.4839 → 2.48; MRR = 1000.00 / 2.48 = 403.2258 → 403.23
        # (with the unrounded Duration it would be 402.60)
        "202501,O-3,O-3,P-MON,C1,2025-01-10,1000.00,1,,1000,1000.00,true,2025-01-10,2025-03-24,403.23,2.48,USD,",
        # 2025-01-31 … 2025-03-30: end + 1 = 03-31; Jan 31 + 2 months at once = Mar 31 ≤ 03-31 → k = 2, 0 left
        # → 2.00 (month by month, Feb 28 + 1 month = Mar 28, it would be 2 + 3/31 = 2.10); MRR 250.00
        "202501,O-4,O-4,P-DAY,C1,2025-01-31,500.00,1,,500,500.00,true,2025-01-31,2025-03-30,250.00,2.00,USD,",
        # one day: k = 0, 1/31 = 0.032 → 0.03; point in time: MRR 0.00
        "202501,O-5,O-5,P-PIT,C1,2025-01-20,100.00,1,,100,100.00,true,2025-01-20,2025-01-20,0.00,0.03,USD,",
        # usage: Bookings 1000 × 0.05 = 50.00 but Allocated_Revenue 0.00 and MRR 0.00; Duration 12.00
        "202501,O-6,O-6,P-USE,C1,2025-01-01,50.00,1000,,0.05,0.00,true,2025-01-01,2025-12-31,0.00,12.00,USD,",
        # 2024-01-20 … 2024-02-09: end + 1 = 02-10 < 02-20 → k = 0; 21 days from 01-20 over January's 31
        # → 0.677 → 0.68; MRR = 100.00 / 0.68 = 147.0588 → 147.06
        "202501,O-7,O-7,P-DAY,C1,2024-01-20,100.00,1,,100,100.00,true,2024-01-20,2024-02-09,147.06,0.68,USD,",
        # 2024-02-01 … 2024-02-14: k = 0; 14 days over February 2024's 29 → 0.4828 → 0.48;
        # MRR = 290.00 / 0.48 = 604.1667 → 604.17
        "202501,O-8,O-8,P-MON,C1,2024-02-01,290.00,1,,290,290.00,true,2024-02-01,2024-02-14,604.17,0.48,USD,",
        # Bookings = round(2.5 × 19.999) = round(49.9975) = 50.00; plain decimals 2.5, 25.5, 19.999
        "202501,O-9,O-9,P-PIT,C1,2025-01-05,50.00,2.5,25.5,19.999,50.00,true,2025-01-05,2025-01-05,0.00,0.03,USD,",
        "",
    ]


# ------------------------------------------------------------------------------------------------
# corrections of data already reported in a closed period (late data lands in O)


def test_invoice_corrected_after_close_is_restated_in_the_register(tmp_path: Path) -> None:
    """An invoice line reported in a closed period whose currency or order line is corrected later."""
    led = base_ledger(tmp_path)
    led.load(
        exchange_rates=[rate("EUR", "USD", "2025-01-01", "1.10")],
        sales_orders=[
            so("B-1", "P-MON", "2025-01-01", "2025-03-31", "300.00"),
            so("MV-1", "P-PIT", "2025-01-10", "2025-03-10", "100.00", order="MV"),
            so("MV-2", "P-PIT", "2025-01-10", "2025-03-10", "100.00", order="MV"),
        ],
        invoices=[
            inv("B-INV", "B-1", "2025-01-05", "300.00", currency="EUR"),  # keyed in the wrong currency
            inv("MV-INV", "MV-1", "2025-01-10", "100.00"),  # booked on the wrong line
        ],
    )
    led.close(202501)
    jan = led.export(202501)["invoices"]
    led.load(
        invoices=[
            inv("B-INV", "B-1", "2025-01-05", "300.00", currency="USD"),
            inv("MV-INV", "MV-2", "2025-01-10", "100.00"),
        ]
    )
    led.compute()
    # the lines' billing follows the corrections, caught up in February (O):
    #   B-1: Jan reported 300.00 EUR × 1.10 = 33000; now 30000 USD → Feb New_Billing 30000 − 33000 = −3000
    #   MV-1: Feb −10000; MV-2: Feb +10000
    assert led.series("B-1", "New_Billing") == {202501: 33000, 202502: -3000}
    assert led.series("MV-1", "New_Billing") == {202501: 10000, 202502: -10000}
    assert led.series("MV-2", "New_Billing") == {202502: 10000}
    # SPEC §6: invoices rows carry the invoice's own amount and currency, and late data lands in O; so
    # over all periods the register must add up, per invoice line, order line and currency, to the
    # invoices as they are now: B-INV 300.00 USD on B-1 (and 0 EUR), MV-INV 100.00 on MV-2 (and 0 on MV-1).
    # January (closed) keeps what it reported; the restatement (−300.00 EUR / +300.00 USD, −100.00 on MV-1 /
    # +100.00 on MV-2) belongs to February.
    totals: dict[tuple, int] = defaultdict(int)
    for r in led.rows("SELECT * FROM invoice_register"):
        totals[(r["Invoice_Number"], r["Sales_Order_Item_Id"], r["Currency"])] += r["Billing_Amount"]
    assert {k: v for k, v in totals.items() if v} == {
        ("B-INV", "B-1", "USD"): 30000,
        ("MV-INV", "MV-2", "USD"): 10000,
    }
    assert led.export(202501, folder="again")["invoices"] == jan


def test_invoice_as_contract_line_repointed_to_an_order_line_after_close_is_reversed(tmp_path: Path) -> None:
    """An invoice first imported without Sales_Order_Item_Id (its own contract line I-1-1), then corrected
    to bill an order line: I-1-1 no longer exists, so what it reported is reversed in O."""
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[so("S-1", "P-PIT", "2025-01-10", "2025-01-10", "100.00")],
        invoices=[inv("I-1", "", "2025-01-10", "100.00", Customer_Id="C1", Product_Id="P-PIT")],
    )
    led.close(202501)
    # January reported: I-1-1 revenue 10000 and billing 10000; S-1 revenue 10000 (unbilled, trued up)
    led.load(invoices=[inv("I-1", "S-1", "2025-01-10", "100.00", Customer_Id="C1", Product_Id="P-PIT")])
    led.compute()
    # the one invoice now bills S-1: S-1 gets New_Billing 10000 in February (O)
    assert led.series("S-1", "New_Billing") == {202502: 10000}
    # SPEC §4: closed periods never change and modifications / cancellations are caught up in O. The
    # contracts are now S-1 alone (A = 10000) billed once (10000), so over all periods:
    #   Σ Revenue = 10000 and Σ New_Billing = 10000 — which needs I-1-1's −10000 / −10000 in February
    totals = led.rows("SELECT sum(Revenue) AS revenue, sum(New_Billing) AS billing FROM line_periods")[0]
    assert (totals["revenue"], totals["billing"]) == (10000, 10000)
    assert led.series("I-1-1", "Revenue") == {202501: 10000, 202502: -10000}


# ------------------------------------------------------------------------------------------------
# export format (SPEC §6): sort by key by code point, formula escaping, RFC 4180 quoting


def test_export_rows_sorted_by_key_by_code_point_with_escaping(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(products=[{"Product_Id": "P-Q", "Product_Code": "Q", "Product_Name": 'Setup, "premium"',
                        "Revenue_Rule": "point_in_time", "Class": "Services"}])
    ids = ["SO-a", "SO-B", "SO-10", "SO-9", "=X", "0-ID", "SO-É"]
    led.load(
        sales_orders=[so(i, "P-Q" if i == "SO-É" else "P-PIT", "2025-01-10", "2025-01-10", "10.00") for i in ids],
    )
    led.close(202501)
    lines = led.export(202501)["revenue"].split("\n")
    # by code point of the raw key: '0' U+0030 < '=' U+003D < 'S'; "SO-10" < "SO-9" ('1' < '9');
    # "SO-9" < "SO-B" ('9' U+0039 < 'B' U+0042) < "SO-a" (U+0061) < "SO-É" (U+00C9). A text beginning
    # with '=' is written with a leading apostrophe (sorting by the written text would put "'=X" first).
    # A field with a comma or a quote is quoted, its quotes doubled (RFC 4180).
    assert lines[1:] == [
        "202501,,0-ID,0-ID,PIT,Point in time,2025-01-10,USD,C1,10.00",
        "202501,,'=X,'=X,PIT,Point in time,2025-01-10,USD,C1,10.00",
        "202501,,SO-10,SO-10,PIT,Point in time,2025-01-10,USD,C1,10.00",
        "202501,,SO-9,SO-9,PIT,Point in time,2025-01-10,USD,C1,10.00",
        "202501,,SO-B,SO-B,PIT,Point in time,2025-01-10,USD,C1,10.00",
        "202501,,SO-a,SO-a,PIT,Point in time,2025-01-10,USD,C1,10.00",
        '202501,,SO-É,SO-É,Q,"Setup, ""premium""",2025-01-10,USD,C1,10.00',
        "",
    ]
    # journals: within a line, by Account_Type (code point). Unbilled, each line is trued up in January, its
    # contract's last period (Adjustment +1000): Contra Revenue +1000, Revenue −1000
    journal = [r.split(",") for r in led.export(202501)["journals"].splitlines()[1:]]
    assert [(r[2], r[8], r[9], r[10]) for r in journal[:2]] == [
        ("0-ID", "Contra Revenue", "0.00", "10.00"), ("0-ID", "Revenue", "10.00", "0.00"),
    ]
    assert [r[2] for r in journal[::2]] == ["0-ID", "'=X", "SO-10", "SO-9", "SO-B", "SO-a", "SO-É"]


def test_month_lengths_are_counted_like_the_calendar(tmp_path):
    """The ratable_daily schedule counts whole months by length instead of listing them (sql/schema/revrec.sql
    days_in_month, months_with_days): both agree with Python's calendar, leap years included."""
    import calendar

    con = warehouse.connect(tmp_path / "w.duckdb")
    lengths = dict(con.execute("SELECT mi, days_in_month(mi) FROM range(12 * 1890, 12 * 2110) t(mi)").fetchall())
    assert lengths == {mi: calendar.monthrange(mi // 12, mi % 12 + 1)[1] for mi in range(12 * 1890, 12 * 2110)}
    ranges = [(a, a + k) for a in range(12 * 1895, 12 * 2105, 5) for k in (-1, 0, 1, 11, 12, 13, 47, 49, 400)]
    counted = con.execute(
        "SELECT a, b, n, months_with_days(a, b, n) FROM (SELECT unnest(?) AS r), "
        "(VALUES (28), (29), (30), (31)) t(n), LATERAL (SELECT r[1] AS a, r[2] AS b)",
        [[list(r) for r in ranges]],
    ).fetchall()
    for a, b, n, count in counted:
        assert count == sum(1 for mi in range(a, b + 1) if lengths.get(mi, calendar.monthrange(mi // 12, mi % 12 + 1)[1]) == n), (a, b, n)
    assert len(counted) == 4 * len(ranges)
    # the running counts a row's whole months are taken from (februaries_through and the others): the months
    # a + 1 … b counted as the difference of two running counts, against the calendar
    pairs = [(a, a + k) for a in range(12 * 1895, 12 * 2105, 7) for k in (0, 1, 2, 11, 12, 13, 25, 49, 400)]
    running = con.execute(
        "SELECT r[1], r[2], februaries_through(r[2]) - februaries_through(r[1]), "
        "leap_februaries_through(r[2]) - leap_februaries_through(r[1]), "
        "thirties_through(r[2]) - thirties_through(r[1]) FROM (SELECT unnest(?) AS r)",
        [[list(r) for r in pairs]],
    ).fetchall()
    for a, b, februaries, leap_februaries, thirties in running:
        months = [calendar.monthrange(mi // 12, mi % 12 + 1)[1] for mi in range(a + 1, b + 1)]
        assert (februaries, leap_februaries, thirties) == (
            sum(1 for mi in range(a + 1, b + 1) if mi % 12 == 1), months.count(29), months.count(30)), (a, b)
    assert len(running) == len(pairs)
    con.close()


def test_a_computation_leaves_no_temporary_table_behind(tmp_path: Path) -> None:
    """Each step drops its intermediate temporary tables when it ends (they would hold memory for the rest of
    the connection); what the steps produce stays, and a second computation gives the same rows."""
    from revrec_pipelines.lib.generator import generate

    generate(tmp_path / "in", lines=120, seed=9, months=4)
    con = warehouse.connect(tmp_path / "w.duckdb")
    importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "in"))
    con.execute("CREATE TEMP TABLE callers_own AS SELECT 1 AS x")  # a caller's temporary table is not the engine's
    first = engine.compute(con, "USD")
    temporary = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
    assert temporary == {"callers_own"}
    assert all(r.rows > 0 for r in first if r.table in ("order_lines", "line_series", "line_periods"))
    rows = con.execute("SELECT * FROM line_periods ORDER BY ALL").fetchall()
    engine.compute(con, "USD")
    assert con.execute("SELECT * FROM line_periods ORDER BY ALL").fetchall() == rows
    con.close()
