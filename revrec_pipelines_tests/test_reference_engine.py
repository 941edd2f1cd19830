"""Tests of the pure-Python reference engine (the oracle for the DuckDB engine).

(1) The worked example of shared/examples/worked-example must come out byte for byte.
(2) Small hand-computed cases, with the arithmetic written out in comments (amounts in cents where
    that is clearer).
"""

from __future__ import annotations

import json
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest

from revrec_pipelines_tests.reference_engine import (
    ACCOUNT_TYPES,
    HeldLineError,
    ReferenceLedger,
    UnmappedAccountError,
    duration_hundredths,
    format_value,
    render_csv,
    round_half_away,
    schedule_ratable_daily,
    schedule_ratable_monthly,
)
from revrec_pipelines_tests.support import require

WORKED_EXAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "examples" / "worked-example"
TS = "2025-05-01T06:00:00Z"


# ------------------------------------------------------------------------------------------------
# helpers


def ledger(home: str = "USD", mappings: bool = True) -> ReferenceLedger:
    led = ReferenceLedger(home)
    led.load_rows("customers", [{"Customer_Id": "C1", "Customer_Name": "Acme", "Subsidiary_Id": ""}])
    if mappings:
        led.load_rows(
            "account_mappings",
            [{"Account_Type": t, "Account_Id": str(1000 + i), "Subsidiary_Id": ""} for i, t in enumerate(ACCOUNT_TYPES)],
        )
    return led


def product(led: ReferenceLedger, pid: str, rule: str, ssp: str = "", name: str | None = None) -> None:
    led.load_rows(
        "products",
        [{"Product_Id": pid, "Product_Code": pid, "Product_Name": name or pid, "Revenue_Rule": rule, "SSP": ssp}],
    )


def line(led: ReferenceLedger, so: str, item: str, pid: str, start: str, end: str, price: str, **kw: str) -> None:
    row = {
        "Sales_Order_Id": so,
        "Sales_Order_Item_Id": item,
        "Customer_Id": "C1",
        "Product_Id": pid,
        "Order_Date": start,
        "Quantity": "1",
        "Sale_Price": price,
        "Service_Start_Date": start,
        "Service_End_Date": end,
        "Currency": "USD",
        "List_Price": "",
        "IsActive": "true",
    }
    row.update(kw)
    led.load_rows("sales_orders", [row])


def invoice(led: ReferenceLedger, number: str, item: str, billed: str, amount: str, currency: str = "USD") -> None:
    led.load_rows(
        "invoices",
        [
            {
                "Invoice_Number": number,
                "Invoice_Line": "1",
                "Billing_Date": billed,
                "Billing_Amount": amount,
                "Currency": currency,
                "Sales_Order_Item_Id": item,
            }
        ],
    )


def rate(led: ReferenceLedger, x: str, y: str, on: str, value: str) -> None:
    led.load_rows("exchange_rates", [{"From_Currency": x, "To_Currency": y, "Rate_Date": on, "Rate": value}])


def by_period(rows: list[dict], item: str, column: str) -> dict[int, int]:
    return {r["Actg_Period"]: r[column] for r in rows if r["Sales_Order_Item_Id"] == item}


def journal(tables: dict, item: str, period: int) -> dict[str, int]:
    """Net debit per account type (debit positive, credit negative)."""
    return {
        j["Account_Type"]: j["Debit_Amount"] - j["Credit_Amount"]
        for j in tables["journals"]
        if j["Sales_Order_Item_Id"] == item and j["Actg_Period"] == period
    }


# ------------------------------------------------------------------------------------------------
# (1) the worked example


def replay_worked_example() -> tuple[ReferenceLedger, dict[int, dict[str, str]]]:
    ops = json.loads((WORKED_EXAMPLE / "ops.json").read_text())
    led = ReferenceLedger(ops["home_currency"])
    exports: dict[int, dict[str, str]] = {}
    for op, arg in ops["ops"]:
        if op == "import":
            led.load_csv_dir(WORKED_EXAMPLE / arg)
        elif op == "close":
            led.close(arg)
            exports[arg] = led.close_export(arg, export_timestamp=TS)
        else:
            raise AssertionError(f"unknown op {op}")
    return led, exports


def test_worked_example_matches_expected_byte_for_byte() -> None:
    require((WORKED_EXAMPLE / "ops.json").exists(), "shared/examples/worked-example")
    _, exports = replay_worked_example()
    expected_files = sorted((WORKED_EXAMPLE / "expected").glob("closedperiodexport-*.csv"))
    assert len(expected_files) == 28  # seven types x four closes
    mismatches = []
    for f in expected_files:
        _, file_type, period = f.stem.split("-")
        got = exports[int(period)][file_type]
        if got != f.read_bytes().decode("utf-8"):
            mismatches.append(f.name)
    assert mismatches == []
    # the two types not in expected/: control has one row; invoices hold the invoices of the period
    assert exports[202504]["control"] == f"Closed_Period,Export_Timestamp\n202504,{TS}\n"
    # INV-1003 (April) and the late INV-1004 dated 2025-03-01, reported in April, the first open period
    assert exports[202504]["invoices"].splitlines()[1:] == [
        "202504,SO-1,SO-1-1,INV-1003,,,,,,,,,,2025-04-02,600.00,USD",
        "202504,SO-1,SO-1-3,INV-1004,,,,,,,,,,2025-03-01,500.00,USD",
    ]
    assert exports[202502]["invoices"].splitlines()[1:] == [
        "202502,SO-1,SO-1-3,INV-1002,,,,,,,,,,2025-02-01,350.00,USD",
        "202502,SO-2,SO-2-1,INV-2001,,,,,,,,,,2025-02-01,2500.00,EUR",
    ]


def test_worked_example_invariants() -> None:
    require((WORKED_EXAMPLE / "ops.json").exists(), "shared/examples/worked-example")
    led, _ = replay_worked_example()
    t = led.tables()
    assert t["held_lines"] == []
    for r in t["rollforward"]:  # rollforward identity on P = unearned - unbilled
        begin = r["Beginning_Unearned_Revenue"] - r["Beginning_Unbilled_Receivable"]
        end = r["Ending_Unearned_Revenue"] - r["Ending_Unbilled_Receivable"]
        flows = r["New_Billing"] + r["Foreign_Currency_Change"] - r["Revenue"] + r["Adjustment_To_Unearned_Revenue"]
        assert begin + flows == end
    nets: dict[tuple, int] = {}
    for j in t["journals"]:  # every line-period journal balances
        k = (j["Actg_Period"], j["Sales_Order_Item_Id"])
        nets[k] = nets.get(k, 0) + j["Debit_Amount"] - j["Credit_Amount"]
    assert set(nets.values()) == {0}
    revenue = by_period(t["rollforward"], "SO-1-1", "Revenue")
    assert sum(revenue.values()) == 1_008_000  # the upsold allocation, 10,080.00, once the year is done
    assert sum(by_period(t["rollforward"], "SO-2-1", "Revenue").values()) == 500_000
    assert max(revenue) == 202601
    # SO-1 in its last month: the adjustments of the two allocated lines net to zero (fully billed)
    adj = [
        r["Adjustment_To_Unearned_Revenue"]
        for r in t["rollforward"]
        if r["Actg_Period"] == 202601 and r["Sales_Order_Item_Id"] in ("SO-1-1", "SO-1-2")
    ]
    # SO-1-2 billed 1,200.00 against 2,520.00 recognized: unbilled 1,320.00 trued up (+132000);
    # SO-1-1 billed 10,800.00 + 600.00 = 11,400.00 against 10,080.00: deferred 1,320.00 trued up (-132000)
    assert adj == [-132_000, 132_000]


def test_reopen_and_reclose_recomputes_from_the_reopened_period() -> None:
    require((WORKED_EXAMPLE / "ops.json").exists(), "shared/examples/worked-example")
    led, exports = replay_worked_example()
    # re-closing the last period with no new data reproduces its files exactly
    led.reopen(202504)
    led.close(202504)
    assert led.close_export(202504, export_timestamp=TS) == exports[202504]
    # reopening March: batch2 (already imported) now lands in March, the first open period
    led.reopen(202503)
    assert led.last_closed == 202502
    with pytest.raises(ValueError):
        led.close(202504)
    led.close(202503)
    t = led.tables()
    # SO-1-1 March = cumulative through March at A = 10,080.00 minus frozen Jan + Feb:
    # Jan 1008000*17/365 = 46947.9 -> 46948; Feb *28/365 = 77326.0 -> 77326; Mar *31/365 = 85611.0 -> 85611
    # 46948 + 77326 + 85611 = 209885; frozen 44712 + 73644 = 118356; March = 91529
    assert by_period(t["rollforward"], "SO-1-1", "Revenue")[202503] == 91_529
    assert by_period(t["rollforward"], "SO-1-3", "New_Billing")[202503] == 50_000  # INV-1004, no longer late
    assert by_period(t["rollforward"], "SO-1-1", "Revenue")[202504] == 82_849  # 1008000*30/365 = 82849.3
    assert by_period(t["rollforward"], "SO-1-1", "Revenue")[202502] == 73_644  # still frozen


# ------------------------------------------------------------------------------------------------
# (2) hand-computed cases


def test_round_half_away_from_zero() -> None:
    assert round_half_away(Fraction(5, 2)) == 3
    assert round_half_away(Fraction(-5, 2)) == -3
    assert round_half_away(Fraction(-7, 3)) == -2


def test_ratable_daily_mid_month_and_leap_february() -> None:
    # 2024-01-15 .. 2024-03-14: 17 + 29 (leap Feb) + 14 = 60 days; A = 1,000.00 = 100000 cents
    # Jan 100000*17/60 = 28333.3 -> 28333; Feb 100000*29/60 = 48333.3 -> 48333; Mar = 100000 - 76666 = 23334
    assert schedule_ratable_daily(100_000, date(2024, 1, 15), date(2024, 3, 14)) == {
        202401: 28_333,
        202402: 48_333,
        202403: 23_334,
    }
    # through the ledger: same figures in the revenue and backlog tables
    led = ledger()
    product(led, "P-D", "ratable_daily")
    line(led, "SO-D", "D-1", "P-D", "2024-01-15", "2024-03-14", "1000.00")
    t = led.tables()
    assert by_period(t["rollforward"], "D-1", "Revenue") == {202401: 28_333, 202402: 48_333, 202403: 23_334}
    assert by_period(t["backlog"], "D-1", "Ending_Backlog") == {202401: 71_667, 202402: 23_334, 202403: 0}


def test_ratable_daily_half_cent_rounds_away_from_zero() -> None:
    # 2025-01-31 .. 2025-02-01, 2 days, A = 0.01: Jan 1*1/2 = 0.5 -> 1 cent, Feb the rest, 0
    assert schedule_ratable_daily(1, date(2025, 1, 31), date(2025, 2, 1)) == {202501: 1, 202502: 0}
    assert schedule_ratable_daily(-1, date(2025, 1, 31), date(2025, 2, 1)) == {202501: -1, 202502: 0}


def test_ratable_monthly_remainder_on_last_month() -> None:
    # 2025-01-15 .. 2025-03-14 touches 3 months; 10000/3 = 3333.3 -> 3333, 3333, last 10000 - 6666 = 3334
    assert schedule_ratable_monthly(10_000, date(2025, 1, 15), date(2025, 3, 14)) == {
        202501: 3_333,
        202502: 3_333,
        202503: 3_334,
    }
    # 5000.00 over Feb..Jul: 500000/6 = 83333.3 -> 83333 x 5, last 500000 - 416665 = 83335
    sched = schedule_ratable_monthly(500_000, date(2025, 2, 1), date(2025, 7, 31))
    assert list(sched.values()) == [83_333] * 5 + [83_335]


def test_allocation_largest_remainder_tie_goes_to_smallest_item_id() -> None:
    # T = 50.00 + 30.00 + 20.00 = 10000 cents; equal SSPs: each share 3333.33, floors 9999, 1 cent left;
    # the three remainders tie, so it goes to the smallest Sales_Order_Item_Id by code point: "A-10"
    led = ledger()
    product(led, "P-T", "point_in_time", ssp="10.00")
    for item, price in (("A-2", "30.00"), ("A-10", "50.00"), ("A-3", "20.00")):
        line(led, "SO-T", item, "P-T", "2025-01-01", "2025-01-01", price)
    orders = {o["Sales_Order_Item_Id"]: o["Allocated_Revenue"] for o in led.tables()["orders"]}
    assert orders == {"A-10": 3_334, "A-2": 3_333, "A-3": 3_333}


def test_allocation_largest_remainder_and_ssp_fallbacks() -> None:
    # B-1: product without SSP -> List_Price 1.00, qty 1 -> S = 1; B-2: product SSP 1.00, qty 2 -> S = 2
    # T = 60.00 + 2 x 20.00 = 10000; shares 3333.33 and 6666.67, floors 3333 + 6666, the cent goes to
    # the larger remainder (0.67): B-2.  A usage line and a cancelled line of the order get nothing.
    led = ledger()
    product(led, "P-N", "point_in_time")
    product(led, "P-S", "point_in_time", ssp="1.00")
    product(led, "P-U", "usage")
    line(led, "SO-B", "B-1", "P-N", "2025-01-01", "2025-01-01", "60.00", List_Price="1.00")
    line(led, "SO-B", "B-2", "P-S", "2025-01-01", "2025-01-01", "20.00", Quantity="2")
    line(led, "SO-B", "B-3", "P-U", "2025-01-01", "2025-12-31", "5.00")
    line(led, "SO-B", "B-4", "P-S", "2025-01-01", "2025-01-01", "99.00", IsActive="false")
    orders = {o["Sales_Order_Item_Id"]: o for o in led.tables()["orders"]}
    assert {k: o["Allocated_Revenue"] for k, o in orders.items()} == {"B-1": 3_333, "B-2": 6_667, "B-3": 0, "B-4": 0}
    assert orders["B-4"]["Bookings_Amount"] == 9_900 and orders["B-4"]["IsActive"] is False


def test_inverse_rate_is_exact() -> None:
    # only USD -> EUR 3 is given; EUR -> USD is exactly 1/3, not 0.333333
    # line of 1,500,000.00 EUR recognized in January: home revenue 150000000 x 1/3 = 50000000 exactly
    # (a 6-decimal rate 0.333333 would give 49999950, i.e. 499,999.50)
    led = ledger()
    rate(led, "USD", "EUR", "2025-01-01", "3")
    assert led.rate("EUR", "USD", date(2025, 1, 15)) == Fraction(1, 3)
    product(led, "P-I", "point_in_time")
    line(led, "SO-I", "I-1", "P-I", "2025-01-15", "2025-01-15", "1500000.00", Currency="EUR")
    t = led.tables()
    # January is also the contract's last period: the unbilled position is trued up by the adjustment
    assert journal(t, "I-1", 202501) == {"Contra Revenue": 50_000_000, "Revenue": -50_000_000}


def test_through_home_rate_and_fx_change_on_foreign_invoice() -> None:
    # home USD; a GBP line billed in EUR.  Rates: EUR->USD 1.10 (Jan 1), 1.20 (Mar 1); GBP->USD 1.25.
    # EUR->GBP has neither a direct nor an inverse pair: through home = EUR->USD x USD->GBP
    #   on the invoice date 2025-03-10: 1.20 x 1/1.25 = 0.96; on the Order_Date 2025-01-20: 1.10/1.25 = 0.88
    # invoice 1,000.00 EUR: New_Billing = 960.00 GBP; FX change = 880.00 - 960.00 = -80.00 GBP
    # home (GBP->USD 1.25 on the Order_Date): billing 1,200.00, FX change -100.00, revenue 880 x 1.25 = 1,100.00
    led = ledger()
    rate(led, "EUR", "USD", "2025-01-01", "1.10")
    rate(led, "EUR", "USD", "2025-03-01", "1.20")
    rate(led, "GBP", "USD", "2025-01-01", "1.25")
    assert led.rate("EUR", "GBP", date(2025, 3, 10)) == Fraction(24, 25)
    assert led.rate("EUR", "GBP", date(2025, 1, 20)) == Fraction(22, 25)
    product(led, "P-F", "point_in_time")
    line(led, "SO-F", "F-1", "P-F", "2025-03-10", "2025-03-10", "880.00", Currency="GBP", Order_Date="2025-01-20")
    invoice(led, "INV-F", "F-1", "2025-03-10", "1000.00", currency="EUR")
    t = led.tables()
    (row,) = [r for r in t["rollforward"] if r["Actg_Period"] == 202503]
    assert (row["New_Billing"], row["Foreign_Currency_Change"], row["Revenue"]) == (96_000, -8_000, 88_000)
    assert (row["Adjustment_To_Unearned_Revenue"], row["Ending_Unearned_Revenue"]) == (0, 0)  # 960 - 80 - 880
    assert journal(t, "F-1", 202503) == {"Contra Revenue": 110_000, "Revenue": -110_000}  # 1200 - 100
    # the register shows the invoice's own amount and currency
    assert [(r["Billing_Amount"], r["Currency"]) for r in t["invoices"]] == [(100_000, "EUR")]


def test_held_line() -> None:
    # a JPY line with no JPY rate is held: out of every table, listed, and the close fails
    led = ledger()
    product(led, "P-H", "point_in_time")
    line(led, "SO-H", "H-1", "P-H", "2025-01-10", "2025-01-10", "100000.00", Currency="JPY")
    line(led, "SO-U", "U-1", "P-H", "2025-01-10", "2025-01-10", "10.00")
    t = led.tables()
    assert [h["Sales_Order_Item_Id"] for h in t["held_lines"]] == ["H-1"]
    for name in ("rollforward", "backlog", "expenses", "journals", "orders"):
        assert {r["Sales_Order_Item_Id"] for r in t[name]} == {"U-1"}, name
    with pytest.raises(HeldLineError):
        led.close(202501)
    # the rate arrives: 10000000 JPY cents x 0.0065 = 65000 -> 650.00 USD of revenue
    rate(led, "JPY", "USD", "2025-01-01", "0.0065")
    led.close(202501)
    assert journal(led.tables(), "H-1", 202501)["Revenue"] == -65_000
    assert "SO-H,H-1" in led.close_export(202501, TS)["journals"]


def test_commission_catch_up() -> None:
    # ratable_monthly Jan..Jun 2025; commission 1,000.00 dated 2025-03-15 amortized on the same pattern:
    # 100000/6 = 16666.7 -> 16667 x 5, last 100000 - 83335 = 16665; Jan and Feb caught up in March:
    # March 3 x 16667 = 50001; April 16667; May 16667; June 16665
    led = ledger()
    product(led, "P-M", "ratable_monthly")
    line(led, "SO-M", "M-1", "P-M", "2025-01-01", "2025-06-30", "600.00")
    led.load_rows("commissions", [{"Sales_Order_Item_Id": "M-1", "Commission_Date": "2025-03-15", "Amount": "1000.00"}])
    t = led.tables()
    assert by_period(t["expenses"], "M-1", "Commission_Amortization") == {
        202501: 0, 202502: 0, 202503: 50_001, 202504: 16_667, 202505: 16_667, 202506: 16_665,
    }
    assert by_period(t["expenses"], "M-1", "Ending_Deferred_Expense") == {
        202501: 0, 202502: 0, 202503: 49_999, 202504: 33_332, 202505: 16_665, 202506: 0,
    }
    assert {k: v for k, v in journal(t, "M-1", 202503).items() if k.startswith(("Deferred E", "Expense"))} == {
        "Deferred Expense": 49_999,  # 100000 - 50001
        "Expense Clearing": -100_000,
        "Expense Recognized": 50_001,
    }


def test_late_commission_lands_in_first_open_period() -> None:
    # same line, Jan..Mar closed first; then a commission of 1,000.00 dated 2025-02-10 arrives.
    # Its ideal: New_Commissions 100000 in Feb; amortization Feb 33334 (Jan + Feb), Mar 16667, Apr 16667...
    # O = April reports cumulative through April minus frozen (0): New 100000, amortization
    # 33334 + 16667 + 16667 = 66668; ending 33332.  Closed Feb and Mar still show nothing.
    led = ledger()
    product(led, "P-M", "ratable_monthly")
    line(led, "SO-M", "M-1", "P-M", "2025-01-01", "2025-06-30", "600.00")
    led.close(202503)
    led.load_rows("commissions", [{"Sales_Order_Item_Id": "M-1", "Commission_Date": "2025-02-10", "Amount": "1000.00"}])
    t = led.tables()
    rows = {r["Actg_Period"]: r for r in t["expenses"] if r["Sales_Order_Item_Id"] == "M-1"}
    assert rows[202502]["New_Commissions"] == 0 and rows[202503]["Commission_Amortization"] == 0
    assert (rows[202504]["New_Commissions"], rows[202504]["Commission_Amortization"]) == (100_000, 66_668)
    assert rows[202504]["Ending_Deferred_Expense"] == 33_332
    assert rows[202506]["Ending_Deferred_Expense"] == 0


def test_cancelled_line_catch_up_in_first_open_period() -> None:
    # ratable_monthly Jan..Jun 600.00 (100.00 a month), billed 600.00 on Jan 1; the first close, March,
    # closes Jan..Mar.  Then the line is cancelled: its ideal schedules become 0, so O = April reports
    #   Revenue = 0 - 30000 = -30000; New_Booking = 0 - 60000 = -60000;
    #   backlog 30000 - 60000 - (-30000) = 0;
    #   position: P(Mar) = 60000 - 30000 = 30000; P_pre = 30000 - (-30000) = 60000; April < June (the
    #   contract's last period) so no adjustment: unearned 600.00 until June, where it is trued up.
    led = ledger()
    product(led, "P-C", "ratable_monthly")
    line(led, "SO-C", "C-1", "P-C", "2025-01-01", "2025-06-30", "600.00")
    invoice(led, "INV-C", "C-1", "2025-01-01", "600.00")
    led.close(202503)
    before = led.close_export(202503, TS)
    line(led, "SO-C", "C-1", "P-C", "2025-01-01", "2025-06-30", "600.00", IsActive="false")
    t = led.tables()
    rf = {r["Actg_Period"]: r for r in t["rollforward"] if r["Sales_Order_Item_Id"] == "C-1"}
    assert rf[202501]["Revenue"] == 10_000  # frozen
    assert (rf[202504]["Revenue"], rf[202504]["Ending_Unearned_Revenue"]) == (-30_000, 60_000)
    assert rf[202505]["Ending_Unearned_Revenue"] == 60_000
    assert (rf[202506]["Adjustment_To_Unearned_Revenue"], rf[202506]["Ending_Unearned_Revenue"]) == (-60_000, 0)
    bl = {r["Actg_Period"]: r for r in t["backlog"] if r["Sales_Order_Item_Id"] == "C-1"}
    assert (bl[202504]["Beginning_Backlog"], bl[202504]["New_Booking"], bl[202504]["Ending_Backlog"]) == (
        30_000, -60_000, 0,
    )
    assert journal(t, "C-1", 202504) == {"Revenue": 30_000, "Deferred Revenue": -30_000}
    assert journal(t, "C-1", 202506) == {"Contra Revenue": -60_000, "Deferred Revenue": 60_000}
    (order,) = [o for o in t["orders"] if o["Actg_Period"] == 202504]
    assert (order["IsActive"], order["Allocated_Revenue"], order["MRR"]) == (False, 0, 0)
    assert led.close_export(202503, TS) == before  # closed periods never change


def test_cancelled_line_whose_schedule_ended_before_o_gets_a_row_at_o() -> None:
    # point_in_time in January (the contract's last period), billed and recognized 100.00; Jan..Mar closed,
    # no open rows.  Cancelled: a row appears at O = April only:
    #   Revenue 0 - 10000 = -10000; P_pre = 0 + 0 - (-10000) = 10000; April >= January, so
    #   Adjustment = -10000 and P = 0.  Journals: Contra Revenue -10000 (credit), Revenue +10000 (debit).
    led = ledger()
    product(led, "P-P", "point_in_time")
    line(led, "SO-P", "PT-1", "P-P", "2025-01-15", "2025-01-15", "100.00")
    invoice(led, "INV-P", "PT-1", "2025-01-15", "100.00")
    led.close(202501)
    led.close(202502)
    led.close(202503)
    assert [r["Actg_Period"] for r in led.tables()["rollforward"]] == [202501]
    line(led, "SO-P", "PT-1", "P-P", "2025-01-15", "2025-01-15", "100.00", IsActive="false")
    t = led.tables()
    rows = [r for r in t["rollforward"] if r["Sales_Order_Item_Id"] == "PT-1"]
    assert [r["Actg_Period"] for r in rows] == [202501, 202504]
    assert (rows[1]["Revenue"], rows[1]["Adjustment_To_Unearned_Revenue"], rows[1]["Ending_Unearned_Revenue"]) == (
        -10_000, -10_000, 0,
    )
    assert journal(t, "PT-1", 202504) == {"Contra Revenue": -10_000, "Revenue": 10_000}
    led.close(202504)
    out = led.close_export(202504, TS)
    assert out["revenue_backlog"].splitlines()[1:] == ["202504,SO-P,PT-1,P-P,0.00,-100.00,-100.00,0.00"]
    # after the catch-up is closed, nothing is left to report
    assert [r["Actg_Period"] for r in led.tables()["rollforward"]] == [202501, 202504]


@pytest.mark.parametrize(
    ("start", "end", "hundredths"),
    [
        # end + 1 = 2025-02-28; Jan 31 + 1 month clamps to Feb 28 <= Feb 28: k = 1, no days left
        ("2025-01-31", "2025-02-27", 100),
        ("2025-01-15", "2026-01-14", 1200),  # end + 1 = 2026-01-15 = start + 12 months
        ("2025-01-15", "2025-01-31", 55),  # k = 0; 17 days over January's 31 = 0.548
        ("2025-03-05", "2025-03-05", 3),  # 1 day over 31 = 0.032
        ("2024-01-31", "2024-02-28", 100),  # leap year: Jan 31 + 1 month = Feb 29 = end + 1
        ("2024-01-31", "2024-02-27", 90),  # Feb 29 > Feb 28: k = 0; 28 days over January's 31 = 0.903
        ("2025-02-01", "2025-07-31", 600),
        ("2025-01-10", "2025-02-24", 154),  # k = 1 (Feb 10); Feb 10 -> Feb 25 = 15 days over 28 = 0.536
        # k = 1: Jan 31 + 2 months at once = Mar 31 > end + 1 = Mar 30; base Feb 28, 30 days over
        # February's 28: 1 + 1.071 = 2.07 (the SPEC's rule taken literally)
        ("2025-01-31", "2025-03-29", 207),
    ],
)
def test_duration(start: str, end: str, hundredths: int) -> None:
    assert duration_hundredths(date.fromisoformat(start), date.fromisoformat(end)) == hundredths


def test_mrr_uses_the_exported_duration() -> None:
    # ratable_daily 2025-01-15 .. 2025-01-31, A = 1,000.00: Duration 0.55; MRR = 1000 / 0.55 = 1818.18
    led = ledger()
    product(led, "P-R", "ratable_daily")
    product(led, "P-Q", "point_in_time")
    line(led, "SO-R", "R-1", "P-R", "2025-01-15", "2025-01-31", "1000.00")
    line(led, "SO-Q", "Q-1", "P-Q", "2025-01-15", "2025-01-31", "1000.00")
    orders = {o["Sales_Order_Item_Id"]: o for o in led.tables()["orders"]}
    assert (orders["R-1"]["Duration"], orders["R-1"]["MRR"]) == (55, 181_818)
    assert orders["Q-1"]["MRR"] == 0  # not ratable


def test_invoice_register_late_and_changed_invoices() -> None:
    # INV-A 300.00 on Jan 5 is reported in January, which is closed.  Then INV-A is changed to 350.00 and
    # INV-B 300.00 dated Jan 20 arrives late: both go to O = February, INV-A with the difference 50.00.
    # New_Billing of February = 5000 + 30000 = 35000, the register's February total.
    led = ledger()
    product(led, "P-G", "ratable_monthly")
    line(led, "SO-G", "G-1", "P-G", "2025-01-01", "2025-06-30", "600.00")
    invoice(led, "INV-A", "G-1", "2025-01-05", "300.00")
    led.close(202501)
    invoice(led, "INV-A", "G-1", "2025-01-05", "350.00")
    invoice(led, "INV-B", "G-1", "2025-01-20", "300.00")
    led.close(202502)
    out = led.close_export(202502, TS)
    assert out["invoices"].splitlines()[1:] == [
        "202502,SO-G,G-1,INV-A,,,,,,,,,,2025-01-05,50.00,USD",
        "202502,SO-G,G-1,INV-B,,,,,,,,,,2025-01-20,300.00,USD",
    ]
    assert by_period(led.tables()["rollforward"], "G-1", "New_Billing")[202502] == 35_000
    assert led.close_export(202501, TS)["invoices"].splitlines()[1:] == [
        "202501,SO-G,G-1,INV-A,,,,,,,,,,2025-01-05,300.00,USD"
    ]


def test_invoice_as_contract_line() -> None:
    # no Sales_Order_Item_Id: the invoice line is its own order line INV-9-2, booked and allocated at the
    # billed amount, service period the billing date, Quantity 1, Sale_Price = billed, no List_Price
    led = ledger()
    product(led, "P-S", "point_in_time", ssp="5000.00")
    led.load_rows(
        "invoices",
        [{"Invoice_Number": "INV-9", "Invoice_Line": "2", "Billing_Date": "2025-03-05", "Billing_Amount": "900.50",
          "Currency": "USD", "Customer_Id": "C1", "Product_Id": "P-S"}],
    )
    led.close(202503)
    out = led.close_export(202503, TS)
    assert out["orders"].splitlines()[1:] == [
        "202503,INV-9-2,INV-9-2,P-S,C1,2025-03-05,900.50,1,,900.5,900.50,true,2025-03-05,2025-03-05,0.00,0.03,USD,INV-9"
    ]
    assert out["revenue"].splitlines()[1:] == ["202503,INV-9,INV-9-2,INV-9-2,P-S,P-S,2025-03-05,USD,C1,900.50"]


def test_close_rules() -> None:
    led = ledger(mappings=False)
    product(led, "P-X", "point_in_time")
    line(led, "SO-X", "X-1", "P-X", "2025-01-10", "2025-01-10", "10.00")
    with pytest.raises(UnmappedAccountError):
        led.close(202501)
    led.load_rows(
        "account_mappings",
        [{"Account_Type": t, "Account_Id": str(2000 + i), "Subsidiary_Id": ""} for i, t in enumerate(ACCOUNT_TYPES)],
    )
    led.close(202412)  # the first close may be any period
    with pytest.raises(ValueError):
        led.close(202502)  # later closes must be L + 1
    led.close(202501)
    with pytest.raises(ValueError):
        led.reopen(202503)  # not closed


def test_csv_rendering() -> None:
    assert format_value("Product_Name", "=SUM(A1)") == "'=SUM(A1)"
    assert format_value("Product_Name", "-dash") == "'-dash"
    assert format_value("Revenue", -12_345) == "-123.45"
    assert format_value("Revenue", -5) == "-0.05"
    rows = [{"Actg_Period": 202501, "Sales_Order_Id": "b", "Sales_Order_Item_Id": "x", "Product_Id": "P,1",
             "Beginning_Deferred_Expense": 0, "New_Commissions": 1, "Commission_Amortization": 0,
             "Ending_Deferred_Expense": 1},
            {"Actg_Period": 202501, "Sales_Order_Id": "B", "Sales_Order_Item_Id": "x", "Product_Id": "P",
             "Beginning_Deferred_Expense": 0, "New_Commissions": 0, "Commission_Amortization": 0,
             "Ending_Deferred_Expense": 0}]
    text = render_csv("expenses", rows)
    # the all-zero row is omitted; a comma is quoted; "\n" line ends
    assert text.splitlines()[1:] == ['202501,b,x,"P,1",0.00,0.01,0.00,0.01'] and "\r" not in text


def test_load_csv_dir_types_by_stem_prefix(tmp_path: Path) -> None:
    # case-insensitive type prefix and header names, a BOM, and dependency order (invoices before orders
    # by name, applied after them)
    (tmp_path / "Invoices_2025.csv").write_text(
        "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Item_Id\n"
        "INV-1,1,2025-01-05,10.00,USD,L-1\n"
    )
    (tmp_path / "SALES_ORDERS_x.csv").write_text(
        "\ufeff sales_order_id ,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,"
        "Service_Start_Date,Service_End_Date,Currency\nSO-1,L-1,C1,P-1,2025-01-05,1,10.00,2025-01-05,2025-01-05,USD\n",
        encoding="utf-8",
    )
    (tmp_path / "products.csv").write_text(
        "Product_Id,Product_Code,Product_Name,Revenue_Rule\nP-1,P1,One,point_in_time\n"
    )
    led = ledger()
    led.load_csv_dir(tmp_path)
    (row,) = led.tables()["rollforward"]
    assert (row["Sales_Order_Id"], row["New_Billing"], row["Revenue"]) == ("SO-1", 1_000, 1_000)


def test_line_vanishing_from_the_input_is_reversed_in_o() -> None:
    # INV-9/1 is invoice-as-contract (its own line INV-9-1, 100.00 in January), January is closed; then
    # the same invoice line is re-sent naming order line L-1.  INV-9-1 no longer exists: O = February
    # reverses it (Revenue -10000, New_Billing -10000, nothing left); L-1 gets the billing late, in O.
    # The register reverses the row of INV-9-1 and reports the one of L-1, both in February.
    led = ledger()
    product(led, "P-V", "point_in_time")
    line(led, "SO-L", "L-1", "P-V", "2025-01-10", "2025-06-30", "100.00")
    led.load_rows(
        "invoices",
        [{"Invoice_Number": "INV-9", "Invoice_Line": "1", "Billing_Date": "2025-01-10", "Billing_Amount": "100.00",
          "Currency": "USD", "Customer_Id": "C1", "Product_Id": "P-V"}],
    )
    led.close(202501)
    invoice(led, "INV-9", "L-1", "2025-01-10", "100.00")
    led.close(202502)
    t = led.tables()
    ghost = [r for r in t["rollforward"] if r["Sales_Order_Item_Id"] == "INV-9-1"]
    assert [(r["Actg_Period"], r["Revenue"], r["New_Billing"], r["Ending_Unearned_Revenue"]) for r in ghost] == [
        (202501, 10_000, 10_000, 0),
        (202502, -10_000, -10_000, 0),
    ]
    assert by_period(t["rollforward"], "L-1", "New_Billing")[202502] == 10_000
    assert led.close_export(202502, TS)["invoices"].splitlines()[1:] == [
        "202502,INV-9-1,INV-9-1,INV-9,,,,,,,,,,2025-01-10,-100.00,USD",
        "202502,SO-L,L-1,INV-9,,,,,,,,,,2025-01-10,100.00,USD",
    ]
    led.close(202503)  # once reversed and closed, the vanished line has no more rows
    assert max(r["Actg_Period"] for r in led.tables()["rollforward"] if r["Sales_Order_Item_Id"] == "INV-9-1") == 202502


def test_random_book_keeps_the_invariants() -> None:
    # a seeded random book (ratable, point-in-time, usage; USD and EUR; invoices, usage, commissions,
    # upsells and cancellations between closes): every identity of SPEC §4 holds and closed periods
    # never change.
    import random

    rnd = random.Random(606)
    led = ledger()
    rate(led, "EUR", "USD", "2024-12-01", "1.0825")
    rate(led, "EUR", "USD", "2025-03-01", "1.1175")
    for rule in ("ratable_daily", "ratable_monthly", "point_in_time", "usage"):
        product(led, f"P-{rule}", rule, ssp=str(rnd.randint(100, 5000)) + ".00" if rule != "usage" else "")

    def random_line(n: int, month: int) -> None:
        start = date(2025, month, rnd.randint(1, 28))
        end = date(2025 + rnd.randint(0, 1), rnd.randint(1, 12), rnd.randint(1, 28))
        end = max(start, end)
        rule = rnd.choice(["ratable_daily", "ratable_monthly", "point_in_time", "usage"])
        item = f"L-{n:03d}"
        line(led, f"SO-{n // 3}", item, f"P-{rule}", start.isoformat(), end.isoformat(),
             f"{rnd.randint(1, 90000) / 100:.2f}", Quantity=str(rnd.randint(1, 3)),
             Currency="EUR" if (n // 3) % 4 == 0 else "USD",
             Order_Date=date(2024, 12, 1 + n % 28).isoformat(),
             IsActive="false" if rnd.random() < 0.05 else "true")
        invoice(led, f"INV-{n}", item, start.isoformat(), f"{rnd.randint(0, 200000) / 100:.2f}",
                currency=rnd.choice(["USD", "EUR"]))
        if rule == "usage":
            led.load_rows("usage", [{"Sales_Order_Item_Id": item, "Usage_Date": start.isoformat(), "Amount": "12.34"}])
        if rnd.random() < 0.3:
            led.load_rows("commissions", [{"Sales_Order_Item_Id": item, "Commission_Date": start.isoformat(),
                                           "Amount": f"{rnd.randint(1, 50000) / 100:.2f}"}])

    n = 0
    exports: dict[int, dict[str, str]] = {}
    for month, period in ((1, 202501), (2, 202502), (3, 202503), (4, 202504)):
        for _ in range(25):
            random_line(n, rnd.randint(1, month))
            n += 1
        led.close(period)
        exports[period] = led.close_export(period, TS)
        for p, files in exports.items():
            assert led.close_export(p, TS) == files
    t = led.tables()
    assert len(t["rollforward"]) > 1000 and any(r["Foreign_Currency_Change"] for r in t["rollforward"])
    for r in t["rollforward"]:
        begin = r["Beginning_Unearned_Revenue"] - r["Beginning_Unbilled_Receivable"]
        end = r["Ending_Unearned_Revenue"] - r["Ending_Unbilled_Receivable"]
        assert begin + r["New_Billing"] + r["Foreign_Currency_Change"] - r["Revenue"] + r[
            "Adjustment_To_Unearned_Revenue"] == end
        assert min(r["Ending_Unearned_Revenue"], r["Ending_Unbilled_Receivable"]) == 0
    nets: dict[tuple, int] = {}
    for j in t["journals"]:
        k = (j["Actg_Period"], j["Sales_Order_Item_Id"])
        nets[k] = nets.get(k, 0) + j["Debit_Amount"] - j["Credit_Amount"]
    assert set(nets.values()) <= {0}
    orders = {o["Sales_Order_Item_Id"]: o for o in t["orders"] if o["Actg_Period"] == 202505}
    for item, o in orders.items():
        revenue = sum(by_period(t["rollforward"], item, "Revenue").values())
        if o["Allocated_Revenue"] or not o["IsActive"]:
            assert revenue == o["Allocated_Revenue"]  # every line finishes by the end of its rows
        last = [r for r in t["rollforward"] if r["Sales_Order_Item_Id"] == item][-1]
        assert (last["Ending_Unearned_Revenue"], last["Ending_Unbilled_Receivable"]) == (0, 0)
        backlog = [r for r in t["backlog"] if r["Sales_Order_Item_Id"] == item]
        assert not backlog or backlog[-1]["Ending_Backlog"] == 0
        expense = [r for r in t["expenses"] if r["Sales_Order_Item_Id"] == item]
        assert expense[-1]["Ending_Deferred_Expense"] == 0
    by_order: dict[str, list[dict]] = {}
    for o in orders.values():
        by_order.setdefault(o["Sales_Order_Id"], []).append(o)
    for members in by_order.values():  # allocation sums to T per order (active non-usage lines)
        eligible = [o for o in members if o["IsActive"] and o["Product_Id"] != "P-usage"]
        assert sum(o["Allocated_Revenue"] for o in eligible) == sum(o["Bookings_Amount"] for o in eligible)
