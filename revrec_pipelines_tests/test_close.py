"""Period close and reopen (SPEC §5, §4 "Closed periods never change"), through lib/close.py and the
close-period exports of lib/exports.py, on a real warehouse fed by CSV drops (see test_engine_rules.py
for the harness).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from revrec_pipelines.lib import close, sql
from revrec_pipelines_tests.test_engine_rules import (
    EXPORT_TYPES_ALL,
    Ledger,
    base_ledger,
    inv,
    mappings,
    rate,
    so,
)

# ------------------------------------------------------------------------------------------------
# helpers


def snapshot(led: Ledger, skip: tuple[str, ...] = ("close_audit",)) -> dict[str, list[tuple]]:
    """Every (non-temporary) table of the warehouse, rows in a canonical order."""
    tables = [
        r[0]
        for r in led.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main' ORDER BY 1"
        ).fetchall()
    ]
    return {t: led.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables if t not in skip}


def closed(led: Ledger) -> list[tuple[int, int, bool]]:
    return [tuple(r) for r in led.con.execute("SELECT period, close_number, exported FROM closed_periods ORDER BY 1").fetchall()]


def audit(led: Ledger) -> list[tuple]:
    return [
        tuple(r)
        for r in led.con.execute("SELECT action, period, close_number, actor FROM close_audit ORDER BY event_id").fetchall()
    ]


def subscription(led: Ledger) -> None:
    """R-1: 300.00 over Jan–Mar 2025 (10000 a month), billed upfront; R-2: 600.00 over Feb–Jul, unbilled."""
    led.load(
        sales_orders=[
            so("R-1", "P-MON", "2025-01-01", "2025-03-31", "300.00"),
            so("R-2", "P-MON", "2025-02-01", "2025-07-31", "600.00", customer="C2"),
        ],
        invoices=[inv("R-INV", "R-1", "2025-01-01", "300.00")],
    )


# ------------------------------------------------------------------------------------------------
# the first close, the order of closes


def test_first_close_may_be_any_period_and_closes_the_earlier_periods_with_it(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(
        sales_orders=[
            # history from November 2024
            so("HIST-1", "P-MON", "2024-11-01", "2025-04-30", "600.00"),
            so("R-1", "P-MON", "2025-01-01", "2025-03-31", "300.00"),
            so("LATER-1", "P-PIT", "2025-05-10", "2025-05-10", "50.00"),  # ordered after March
        ],
        invoices=[inv("H-INV", "HIST-1", "2024-11-01", "600.00")],
    )
    result = led.close(202503)
    assert result.periods_frozen == [202411, 202412, 202501, 202502, 202503]
    # every earlier period is closed by close #1 as history; only March is exported
    assert closed(led) == [
        (202411, 1, False), (202412, 1, False), (202501, 1, False), (202502, 1, False), (202503, 1, True),
    ]
    frozen = [r[0] for r in led.con.execute("SELECT DISTINCT Actg_Period FROM frozen_line_periods ORDER BY 1").fetchall()]
    assert frozen == [202411, 202412, 202501, 202502, 202503]
    assert audit(led) == [("close", 202503, 1, "test")]
    files = led.export(202503)
    assert sorted(files) == sorted(EXPORT_TYPES_ALL)
    assert sorted((tmp_path / "exports").iterdir()) == sorted(
        tmp_path / "exports" / f"closedperiodexport-{t}-202503.csv" for t in EXPORT_TYPES_ALL
    )
    # orders: the lines with Order_Date ≤ 2025-03-31 (not LATER-1)
    assert [r.split(",")[2] for r in files["orders"].splitlines()[1:]] == ["HIST-1", "R-1"]
    # HIST-1: 600.00 over Nov–Apr = 10000 a month; March reports its own month only
    assert ",HIST-1,HIST-1,MON,Monthly subscription,2024-11-01,USD,C1,100.00" in files["revenue"]
    # the next close is April; a price change of HIST-1 now catches up in April, history stays
    led.load(sales_orders=[so("HIST-1", "P-MON", "2024-11-01", "2025-04-30", "1200.00")])
    led.compute()
    # new schedule 20000 a month: cumulative through April 120000 − frozen 5 × 10000 = 70000
    assert led.series("HIST-1", "Revenue") == {202411: 10000, 202412: 10000, 202501: 10000, 202502: 10000,
                                                202503: 10000, 202504: 70000}


def test_next_close_must_be_the_first_open_period_and_a_refused_close_changes_nothing(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    subscription(led)
    led.close(202501)
    led.compute()
    before = snapshot(led)
    audit_before = audit(led)
    with pytest.raises(close.CloseRefused) as skipped:
        led.close(202503)
    assert "202502" in str(skipped.value)  # names the first open period
    assert "first open period is 202502" in str(skipped.value)
    with pytest.raises(close.CloseRefused) as again:
        led.close(202501)
    assert "already closed" in str(again.value)
    with pytest.raises(close.CloseRefused):
        led.close(202412)
    assert snapshot(led) == before
    # every refusal is in the audit trail, and nothing else changed there
    refusals = [row for row in audit(led) if row not in audit_before]
    assert [(r[0], r[1]) for r in refusals] == [("close_refused", 202503), ("close_refused", 202501), ("close_refused", 202412)]
    led.close(202502)
    assert closed(led) == [(202501, 1, True), (202502, 2, True)]


def test_refused_close_for_a_held_line_changes_nothing_but_the_audit(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    subscription(led)
    led.close(202501)
    led.load(sales_orders=[so("H-1", "P-MON", "2025-01-01", "2025-04-30", "400.00", currency="CHF")])
    led.compute()  # a close recomputes first: compare with the computed state
    before = snapshot(led)
    with pytest.raises(close.CloseRefused) as refused:
        led.close(202502)
    message = str(refused.value)
    assert "202502 was not closed" in message
    assert "CHF→USD" in message and "H-1" in message
    assert snapshot(led) == before
    (row,) = led.rows("SELECT * FROM close_audit WHERE action = 'close_refused'")
    assert (row["period"], row["close_number"], row["actor"]) == (202502, None, "test")
    assert "CHF→USD" in row["details"]
    # with the rate, the close goes through as close #2
    led.load(exchange_rates=[rate("CHF", "USD", "2025-01-01", "0.90")])
    assert led.close(202502).close_number == 2


def test_unmapped_account_type_refusal_names_the_account_type_and_subsidiary(tmp_path: Path) -> None:
    # no default Unbilled Receivable account; SUB-X has its own, SUB-Y has none
    led = base_ledger(
        tmp_path,
        account_mappings=mappings({("Unbilled Receivable", "SUB-X"): "1251"}, omit=("Unbilled Receivable",)),
    )
    led.load(
        sales_orders=[
            # recognized ahead of billing in January: both need an Unbilled Receivable account
            so("UX-1", "P-MON", "2025-01-01", "2025-03-31", "300.00", customer="C2"),  # SUB-X: mapped
            so("UY-1", "P-MON", "2025-01-01", "2025-03-31", "300.00", customer="C3"),  # SUB-Y: not mapped
        ]
    )
    led.compute()
    before = snapshot(led)
    with pytest.raises(close.CloseRefused) as refused:
        led.close(202501)
    message = str(refused.value)
    assert "Unbilled Receivable for subsidiary SUB-Y" in message
    assert "SUB-X" not in message
    assert snapshot(led) == before
    assert closed(led) == []
    ux = led.rows("SELECT Account_Id FROM journal_lines WHERE Sales_Order_Item_Id = 'UX-1' AND Account_Type = 'Unbilled Receivable'")
    assert {r["Account_Id"] for r in ux} == {"1251"}
    led.load(account_mappings=[{"Account_Type": "Unbilled Receivable", "Account_Id": "1250", "Subsidiary_Id": ""}])
    led.close(202501)
    assert "1250,P-MON,C3,202501_Unbilled Receivable" in led.export(202501)["journals"]


# ------------------------------------------------------------------------------------------------
# reopen


def test_reopen_reopens_every_later_period(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    subscription(led)
    for p in (202501, 202502, 202503, 202504):
        led.close(p)
    result = led.reopen(202502)
    assert result.periods_reopened == [202502, 202503, 202504]
    assert closed(led) == [(202501, 1, True)]
    for table in ("frozen_line_periods", "frozen_journal_lines", "frozen_invoice_register", "frozen_orders"):
        later = led.rows(f"SELECT count(*) AS n FROM {table} WHERE Actg_Period >= 202502")[0]["n"]
        assert later == 0, table
    assert led.rows("SELECT count(*) AS n FROM frozen_line_periods WHERE Actg_Period = 202501")[0]["n"] > 0
    (row,) = led.rows("SELECT * FROM close_audit WHERE action = 'reopen'")
    assert (row["period"], row["actor"]) == (202502, "test")
    assert row["details"] == "reopened 202502, 202503, 202504"
    # the next close is 202502 again
    with pytest.raises(close.CloseRefused) as refused:
        led.close(202503)
    assert "first open period is 202502" in str(refused.value)
    with pytest.raises(close.CloseRefused):
        led.reopen(202506)  # not closed
    assert led.close(202502).close_number == 5


def test_reopening_the_earliest_closed_period_does_not_make_the_next_close_a_first_close(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    subscription(led)
    led.close(202501)
    led.export(202501)
    led.close(202502)
    led.export(202502)
    led.reopen(202501)  # reopens 202501 and 202502: nothing is closed now
    assert closed(led) == []
    # SPEC §5: only the first close ever may be any period; after a reopen the next close is the reopened
    # period (202501), which recomputes it and overwrites its export files. Accepting 202503 here would
    # re-freeze 202501 and 202502 as unexported history and leave their earlier export files stale.
    with pytest.raises(close.CloseRefused) as refused:
        led.close(202503)
    assert "202501" in str(refused.value)


def test_reclose_after_reopen_overwrites_the_export_files(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    subscription(led)
    led.close(202501)
    jan = led.export(202501)
    led.close(202502)
    feb = led.export(202502)
    # R-1 in February: 10000 revenue
    assert "202502,,R-1,R-1,MON,Monthly subscription,2025-01-01,USD,C1,100.00\n" in feb["revenue"]
    led.reopen(202502)
    # R-1's price doubles: 60000 over Jan–Mar = 20000 a month
    led.load(sales_orders=[so("R-1", "P-MON", "2025-01-01", "2025-03-31", "600.00")])
    led.close(202502)
    feb2 = led.export(202502)
    # February = O again: cumulative through Feb 40000 − frozen January 10000 = 30000
    assert "202502,,R-1,R-1,MON,Monthly subscription,2025-01-01,USD,C1,300.00\n" in feb2["revenue"]
    assert feb2["revenue"] != feb["revenue"]
    on_disk = {t: (tmp_path / "exports" / f"closedperiodexport-{t}-202502.csv").read_text() for t in feb2}
    assert on_disk == feb2
    # the folder holds exactly the two periods' files: no temporary or stale files
    names = sorted(p.name for p in (tmp_path / "exports").iterdir())
    assert names == sorted(f"closedperiodexport-{t}-{p}.csv" for t in EXPORT_TYPES_ALL for p in (202501, 202502))
    # January was not reopened: its export is unchanged
    assert led.export(202501, folder="again") == jan


def test_close_audit_records_every_close_reopen_and_refusal(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    subscription(led)
    led.close(202501)
    led.load(sales_orders=[so("H-1", "P-PIT", "2025-02-01", "2025-02-01", "10.00", currency="CHF")])
    with pytest.raises(close.CloseRefused):
        led.close(202502)
    led.load(exchange_rates=[rate("CHF", "USD", "2025-01-01", "0.90")])
    led.close(202502)
    led.reopen(202502)
    led.close(202502)
    rows = led.rows("SELECT * FROM close_audit ORDER BY event_id")
    assert [(r["action"], r["period"], r["close_number"], r["actor"]) for r in rows] == [
        ("close", 202501, 1, "test"),
        ("close_refused", 202502, None, "test"),
        ("close", 202502, 2, "test"),
        ("reopen", 202502, None, "test"),
        ("close", 202502, 3, "test"),
    ]
    assert [r["event_id"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(a["event_at"] <= b["event_at"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[0]["details"].startswith("froze 2025-01")
    assert rows[3]["details"] == "reopened 202502"
    assert closed(led) == [(202501, 1, True), (202502, 3, True)]


# ------------------------------------------------------------------------------------------------
# closed periods never change


def current_hashes(led: Ledger) -> dict[int, int]:
    first, last = led.con.execute("SELECT min(period), max(period) FROM closed_periods").fetchall()[0]
    query = sql.render("close/period_hashes", first_period=first, last_period=last)
    return dict(led.con.execute(query).fetchall())


def test_rows_hash_stays_equal_to_a_recomputation_after_later_imports(tmp_path: Path) -> None:
    led = base_ledger(tmp_path)
    led.load(exchange_rates=[rate("EUR", "USD", "2025-01-01", "1.10")])
    subscription(led)
    led.load(
        sales_orders=[so("E-1", "P-DAY", "2025-01-15", "2025-06-14", "900.00", currency="EUR", customer="C2")],
        invoices=[inv("E-INV", "E-1", "2025-01-15", "900.00", currency="EUR")],
    )
    led.close(202501)
    led.close(202502)
    stored = dict(led.con.execute("SELECT period, rows_hash FROM closed_periods").fetchall())
    assert current_hashes(led) == stored
    exported = {p: led.export(p, folder=f"first-{p}") for p in (202501, 202502)}
    # later imports: a price change, a cancellation, a late invoice, a new line dated in January, a late
    # rate that changes E-1's home rate, a renamed product and a new mapping
    led.load(
        products=[{"Product_Id": "P-MON", "Product_Code": "MON", "Product_Name": "Renamed", "Revenue_Rule": "ratable_monthly"}],
        account_mappings=[{"Account_Type": "Revenue", "Account_Id": "4009", "Subsidiary_Id": "SUB-X"}],
        exchange_rates=[rate("EUR", "USD", "2025-01-10", "1.25")],
        sales_orders=[
            so("R-1", "P-MON", "2025-01-01", "2025-03-31", "450.00"),
            so("R-2", "P-MON", "2025-02-01", "2025-07-31", "600.00", customer="C2", IsActive="false"),
            so("LATE-1", "P-PIT", "2025-01-20", "2025-01-20", "75.00"),
        ],
        invoices=[inv("LATE-INV", "R-1", "2025-02-03", "150.00")],
    )
    led.compute()
    assert current_hashes(led) == stored
    check = sql.render("checks/closed_periods_unchanged", current_hashes=sql.render(
        "close/period_hashes", first_period=202501, last_period=202502))
    assert led.con.execute(check).fetchall() == []
    for p in (202501, 202502):
        assert led.export(p, folder=f"later-{p}") == exported[p]
    # the check has teeth: change one frozen value and February's hash no longer matches
    led.con.execute("UPDATE frozen_line_periods SET Revenue = Revenue + 1 WHERE Actg_Period = 202502 AND Sales_Order_Item_Id = 'R-1'")
    assert [r[0] for r in led.con.execute(check).fetchall()] == [202502]


# ------------------------------------------------------------------------------------------------
# the rollforward check reads each line's prior row from the period before first


ROLLFORWARD_PRIOR_FROM_ALL_HISTORY = """
WITH checked AS (
    SELECT *, true AS in_range FROM line_periods WHERE Actg_Period BETWEEN {from_period} AND {to_period}
),
prior AS (
    SELECT Sales_Order_Item_Id, max(Actg_Period) AS Actg_Period,
           arg_max(Ending_Unearned_Revenue, Actg_Period) AS Ending_Unearned_Revenue,
           arg_max(Ending_Unbilled_Receivable, Actg_Period) AS Ending_Unbilled_Receivable, false AS in_range
    FROM line_periods WHERE Actg_Period < {from_period} GROUP BY Sales_Order_Item_Id
)
SELECT Sales_Order_Item_Id, Actg_Period,
       lag(Actg_Period) OVER w AS prev_period,
       Beginning_Unearned_Revenue <> lag(Ending_Unearned_Revenue) OVER w
           OR Beginning_Unbilled_Receivable <> lag(Ending_Unbilled_Receivable) OVER w AS differs, in_range
FROM (SELECT * FROM checked UNION ALL BY NAME SELECT * FROM prior)
WINDOW w AS (PARTITION BY Sales_Order_Item_Id ORDER BY Actg_Period)
QUALIFY in_range AND differs
ORDER BY ALL
"""


def test_the_rollforward_check_finds_each_lines_prior_row_however_far_back(tmp_path: Path) -> None:
    """A close checks that its periods begin where each line's last earlier row ended. That row is read from
    the period just before, and only for lines with no row there from further back: the check must report
    exactly the rows a reading of the whole history reports — a changed row in the period before, and a line
    whose row there is missing (so that its prior row is older)."""
    from revrec_pipelines.lib import engine, importer, sources, warehouse
    from revrec_pipelines.lib.generator import generate

    generate(tmp_path / "in", lines=150, seed=41, months=6)
    con = warehouse.connect(tmp_path / "w.duckdb")
    importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "in"), progress=lambda _m: None)
    engine.compute(con, "USD")
    for period in (202501, 202502, 202503, 202504):
        close.close_period(con, period, home_currency="USD", actor="t", recompute=False)

    def beginning_mismatches() -> set[tuple[str, int]]:
        reported = close.run_check(con, "rollforward_identity", 202505, 202506)
        return {(r["Sales_Order_Item_Id"], r["Actg_Period"]) for r in reported.iter_rows(named=True)
                if r["problem"].startswith("beginning balances differ")}

    def reference() -> set[tuple[str, int]]:
        rows = con.execute(ROLLFORWARD_PRIOR_FROM_ALL_HISTORY.format(from_period=202505, to_period=202506)).fetchall()
        return {(r[0], r[1]) for r in rows}

    assert beginning_mismatches() == reference() == set()
    # a line whose 202504 row ended elsewhere than its 202505 row begins
    changed = con.execute(
        "SELECT f.Sales_Order_Item_Id FROM frozen_line_periods f JOIN line_periods o USING (Sales_Order_Item_Id) "
        "WHERE f.Actg_Period = 202504 AND o.Actg_Period = 202505 ORDER BY 1 LIMIT 1").fetchall()[0][0]
    con.execute("UPDATE frozen_line_periods SET Ending_Unearned_Revenue = Ending_Unearned_Revenue + 1 "
                "WHERE Sales_Order_Item_Id = ? AND Actg_Period = 202504", [changed])
    # a line with no 202504 row: its 202503 row, which ended with other balances, is the one before 202505
    gap = con.execute(
        "SELECT a.Sales_Order_Item_Id FROM frozen_line_periods a JOIN frozen_line_periods b USING (Sales_Order_Item_Id) "
        "JOIN line_periods o USING (Sales_Order_Item_Id) "
        "WHERE a.Actg_Period = 202503 AND b.Actg_Period = 202504 AND o.Actg_Period = 202505 "
        "AND (a.Ending_Unearned_Revenue, a.Ending_Unbilled_Receivable) <> (b.Ending_Unearned_Revenue, b.Ending_Unbilled_Receivable) "
        "AND a.Sales_Order_Item_Id <> ? ORDER BY 1 LIMIT 1", [changed]).fetchall()[0][0]
    con.execute("DELETE FROM frozen_line_periods WHERE Sales_Order_Item_Id = ? AND Actg_Period = 202504", [gap])
    found = beginning_mismatches()
    assert found == reference() == {(changed, 202505), (gap, 202505)}
    con.close()


# ------------------------------------------------------------------------------------------------
# the rollforward check against a plain Python reading of line_periods


_CHECK_COLUMNS = (
    "Sales_Order_Id, Sales_Order_Item_Id, Actg_Period, Currency, Beginning_Unearned_Revenue, "
    "Beginning_Unbilled_Receivable, New_Billing, Foreign_Currency_Change, Revenue, Adjustment_To_Unearned_Revenue, "
    "Ending_Unearned_Revenue, Ending_Unbilled_Receivable, Beginning_Backlog, New_Booking, Ending_Backlog, "
    "Beginning_Deferred_Expense, New_Commissions, Commission_Amortization, Ending_Deferred_Expense"
)


def _money(cents: int) -> str:
    return f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _rollforward_problems(con, from_period: int, to_period: int) -> list[tuple]:
    """SPEC §4's rollforward rules row by row, each line's rows in period order; a row is reported with the
    first rule it breaks, its beginning compared with the line's previous row, however far back."""
    lines: dict[str, list[tuple]] = {}
    for row in con.execute(f"SELECT {_CHECK_COLUMNS} FROM line_periods").fetchall():
        lines.setdefault(row[1], []).append(row)
    found = []
    for rows in lines.values():
        previous = None
        for r in sorted(rows, key=lambda r: r[2]):
            (so, item, period, currency, bu, bb, billing, fx, revenue, adjustment, eu, eb, bbk, booking, ebk,
             bde, commissions, amortization, ede) = r
            if from_period <= period <= to_period:
                off = (eu - eb) - (bu - bb + billing + fx - revenue + adjustment)
                if off:
                    problem = f"unearned rollforward off by {_money(off)} {currency}"
                elif previous is not None and (bu, bb) != (previous[10], previous[11]):
                    problem = f"beginning balances differ from the ending balances of {previous[2]}"
                elif ebk is not None and bbk + booking - revenue != ebk:
                    problem = f"backlog rollforward off by {_money(ebk - (bbk + booking - revenue))}"
                elif bde + commissions - amortization != ede:
                    problem = f"deferred expense rollforward off by {_money(ede - (bde + commissions - amortization))}"
                elif eu < 0 or eb < 0 or (eu > 0 and eb > 0):
                    problem = "a line carries both unearned revenue and an unbilled receivable, or a negative balance"
                else:
                    problem = None
                if problem:
                    found.append((so, item, period, problem))
            previous = r
    return sorted(found, key=lambda f: (f[2], f[0] is None, f[0] or "", f[1]))


def test_the_rollforward_check_reports_what_a_row_by_row_reading_reports(tmp_path: Path) -> None:
    """Every rule of the check, in frozen and open rows, with rows that break two rules (the first is
    reported), over every period (the asset check) and over a close's periods."""
    from revrec_pipelines.lib import engine, importer, sources, warehouse
    from revrec_pipelines.lib.generator import generate

    generate(tmp_path / "in", lines=80, seed=43, months=6)
    con = warehouse.connect(tmp_path / "w.duckdb")
    importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "in"), progress=lambda _m: None)
    engine.compute(con, "USD")
    for period in (202501, 202502, 202503):
        close.close_period(con, period, home_currency="USD", actor="t", recompute=False)
    assert close.run_check(con, "rollforward_identity").height == 0 and not _rollforward_problems(con, 0, 999912)

    items = [r[0] for r in con.execute(
        "SELECT Sales_Order_Item_Id FROM frozen_line_periods WHERE Actg_Period = 202502 "
        "AND Ending_Backlog IS NOT NULL AND Ending_Unearned_Revenue > 0 ORDER BY 1 LIMIT 5").fetchall()]
    frozen = "UPDATE frozen_line_periods SET {} WHERE Sales_Order_Item_Id = ? AND Actg_Period = 202502"
    con.execute(frozen.format("Ending_Unearned_Revenue = Ending_Unearned_Revenue + 100"), [items[0]])  # and the next row
    con.execute(frozen.format("Beginning_Unearned_Revenue = Beginning_Unearned_Revenue + 7"), [items[1]])  # two rules
    con.execute(frozen.format("Ending_Backlog = Ending_Backlog + 3"), [items[2]])
    con.execute(frozen.format("New_Commissions = New_Commissions + 5"), [items[3]])
    con.execute(frozen.format("Ending_Unbilled_Receivable = Ending_Unbilled_Receivable + 10, New_Billing = New_Billing - 10"),
                [items[4]])
    # an open row's stored position moved: its beginning no longer follows the row before, nor the next row's it
    line_no = con.execute("SELECT line_no FROM line_period_amounts WHERE Actg_Period = 202505 AND position <> 0 "
                          "ORDER BY line_no LIMIT 1").fetchall()[0][0]
    con.execute("UPDATE line_period_amounts SET position = position + 1 WHERE line_no = ? AND Actg_Period = 202505",
                [line_no])

    def reported(from_period: int, to_period: int) -> list[tuple]:
        frame = close.run_check(con, "rollforward_identity", from_period, to_period)
        rows = [(r["Sales_Order_Id"], r["Sales_Order_Item_Id"], r["Actg_Period"], r["problem"])
                for r in frame.iter_rows(named=True)]
        return sorted(rows, key=lambda f: (f[2], f[0] is None, f[0] or "", f[1]))

    everything = _rollforward_problems(con, 0, 999912)
    kinds = {p.split(" ")[0] + " " + p.split(" ")[1] for *_, p in everything}
    assert kinds == {"unearned rollforward", "beginning balances", "backlog rollforward", "deferred expense",
                     "a line"}, kinds
    assert reported(0, 999912) == everything
    for from_period, to_period in ((202502, 202503), (202503, 202503), (202504, 202506), (202506, 202506)):
        assert reported(from_period, to_period) == _rollforward_problems(con, from_period, to_period)
    assert len(reported(202503, 202503)) >= 2  # the rows after the frozen ones moved
    con.close()
