"""The assets' UI metadata read the cheap way shows what the straightforward query over the view shows:
previews read only the first periods that hold their rows, the line-period totals and the chart come from
line_periods summed once (line_period_totals), which nothing that changes the rows lets go stale."""

import pytest

from revrec_pipelines.defs.metadata import markdown_table, preview_frame
from revrec_pipelines.defs.revrec.assets import (
    CHART,
    JOURNAL_TOTALS,
    PERIOD_TOTALS,
    TABLES,
    VIEW_TOTALS,
    asset_metadata,
    ensure_line_period_totals,
)
from revrec_pipelines.lib import close, engine, importer, sources, sql, warehouse
from revrec_pipelines.lib.generator import generate, generate_modifications

HOME = "USD"
# the chart as first written: the totals summed once for the rows and once more for the bars' scale
CHART_TWO_PASSES = (
    "SELECT Actg_Period, fmt_money(sum(Revenue_Home)) AS revenue, fmt_money(sum(Ending_Unearned_Home)) AS deferred, "
    "bar(CAST(sum(Revenue_Home) AS DOUBLE), 0, (SELECT max(s) FROM (SELECT sum(Revenue_Home) AS s FROM line_periods "
    "GROUP BY Actg_Period)) + 1, 30) AS revenue_chart FROM line_periods GROUP BY ALL ORDER BY 1"
)
# each line-period asset's totals as first written: a pass over its own view
NAIVE_TOTALS = {
    "line_periods": "SELECT Actg_Period, count(*) AS line_rows, fmt_money(sum(Revenue_Home)) AS revenue_home, "
    "fmt_money(sum(New_Billing_Home)) AS billing_home, fmt_money(sum(Ending_Unearned_Home)) AS deferred_home, "
    "fmt_money(sum(Ending_Unbilled_Home)) AS unbilled_home FROM line_periods GROUP BY ALL ORDER BY 1",
    "unearned_revenue_rollforward": "SELECT Actg_Period, count(*) AS lines, sum(New_Billing) AS billing, "
    "sum(Revenue) AS revenue, sum(Adjustment_To_Unearned_Revenue) AS adjustment, sum(Ending_Unearned_Revenue) AS unearned, "
    "sum(Ending_Unbilled_Receivable) AS unbilled FROM unearned_revenue_rollforward GROUP BY ALL ORDER BY 1",
    "revenue_waterfall": "SELECT Actg_Period, Currency, sum(Revenue) AS revenue FROM revenue_waterfall GROUP BY ALL ORDER BY 1, 2",
    "deferred_revenue_balance": "SELECT Actg_Period, Currency, sum(Ending_Unearned_Revenue) AS deferred "
    "FROM deferred_revenue_balance GROUP BY ALL ORDER BY 1, 2",
    "revenue_backlog": "SELECT Actg_Period, Currency, sum(New_Booking) AS new_booking, sum(Total_Revenue) AS revenue, "
    "sum(Ending_Backlog) AS backlog FROM revenue_backlog GROUP BY ALL ORDER BY 1, 2",
    "deferred_expenses": "SELECT Actg_Period, Currency, sum(New_Commissions) AS commissions, "
    "sum(Commission_Amortization) AS amortization, sum(Ending_Deferred_Expense) AS deferred_expense "
    "FROM deferred_expenses GROUP BY ALL ORDER BY 1, 2",
}
SUMMED_ONCE = {"line_periods": PERIOD_TOTALS, **VIEW_TOTALS}


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    """A ledger with usage lines, two closed periods (their rows frozen) and a batch of changes after them."""
    root = tmp_path_factory.mktemp("metadata")
    generate(root / "base", lines=90, seed=5, months=6)
    generate_modifications(root / "base", root / "mods", fraction=0.2, seed=6)
    con = warehouse.connect(root / "w.duckdb")
    for folder in ("base", "mods"):
        report = importer.import_from_source(con, sources.LocalFolderSource(root / folder))
        assert not report.rejected, report.failure_message()
        engine.compute(con, HOME)
        if folder == "base":
            close.close_period(con, 202501, home_currency=HOME, actor="t")
            close.close_period(con, 202502, home_currency=HOME, actor="t")
    yield con
    con.close()


@pytest.mark.parametrize("spec", [s for s in TABLES if s.preview_order], ids=lambda s: s.name)
def test_a_preview_is_the_first_rows_of_the_whole_table(con, spec):
    for limit in (1, 7, 10, 60, 400, 100_000):
        want = con.sql(f"SELECT * FROM {spec.name} ORDER BY {spec.preview_order} LIMIT {limit}").pl()
        assert preview_frame(con, spec.name, spec.preview_order, limit).equals(want), (spec.name, limit)


def test_a_preview_whose_first_periods_hold_too_few_of_its_rows_reads_the_whole_view(con):
    """revenue_backlog shows no usage line's rows, which the periods' counts include: there is a limit at
    which the periods chosen by the counts hold fewer backlog rows than the limit, and the preview must
    then read further."""
    counts = dict(con.execute(engine.ROWS_BY_PERIOD["revenue_backlog"]).fetchall())
    backlog = dict(con.execute("SELECT Actg_Period, count(*) FROM revenue_backlog GROUP BY ALL").fetchall())
    short = []
    for limit in range(1, sum(counts.values()) + 1):
        upto, through = 0, None
        for period in sorted(counts):
            upto += counts[period]
            if upto >= limit:
                through = period
                break
        if sum(n for p, n in backlog.items() if p <= through) < limit <= sum(backlog.values()):
            short.append(limit)
    assert short, "the data set has no limit that needs the whole view"
    order = "Actg_Period, Sales_Order_Id, Sales_Order_Item_Id"
    for limit in short[:3]:
        want = con.sql(f"SELECT * FROM revenue_backlog ORDER BY {order} LIMIT {limit}").pl()
        assert preview_frame(con, "revenue_backlog", order, limit).equals(want)


def assert_totals_show_what_the_views_show(con) -> None:
    ensure_line_period_totals(con)
    for name, naive in NAIVE_TOTALS.items():
        # the same rows, the same types, the same text in the UI
        assert con.execute(SUMMED_ONCE[name]).fetchall() == con.execute(naive).fetchall(), name
        assert con.sql(SUMMED_ONCE[name]).types == con.sql(naive).types, name
        assert markdown_table(con, SUMMED_ONCE[name]).value == markdown_table(con, naive).value, name
    assert con.execute(CHART).fetchall() == con.execute(CHART_TWO_PASSES).fetchall()


def test_the_chart_and_the_totals_sum_line_periods_once_and_show_what_a_pass_per_view_shows(con):
    assert_totals_show_what_the_views_show(con)
    assert len(con.execute(CHART).fetchall()) > 3
    # the data set has what each total could get wrong: frozen and open periods, lines without a backlog
    # (usage), more than one currency, commissions
    assert con.execute("SELECT count(DISTINCT Currency) FROM line_periods").fetchall()[0][0] > 1
    assert con.execute("SELECT count(*) FROM line_periods WHERE Ending_Backlog IS NULL").fetchall()[0][0] > 0
    assert con.execute("SELECT count(*) FROM frozen_line_periods").fetchall()[0][0] > 0
    assert con.execute("SELECT sum(New_Commissions) FROM line_periods").fetchall()[0][0] > 0
    # a currency whose lines in some periods are all usage lines: the backlog view has no row for it there
    con.execute("BEGIN TRANSACTION")
    try:
        currency = con.execute(
            "SELECT Currency FROM line_period_lines WHERE Revenue_Rule = 'usage' GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
        ).fetchall()[0][0]
        con.execute("DELETE FROM line_period_amounts WHERE line_no IN (SELECT line_no FROM line_period_lines "
                    "WHERE Currency = ? AND Revenue_Rule <> 'usage')", [currency])
        con.execute("DELETE FROM frozen_line_periods WHERE Currency = ? AND Revenue_Rule <> 'usage'", [currency])
        con.execute("DROP TABLE line_period_totals")  # what a computation that changed the rows would do
        assert con.execute("SELECT count(*) FROM revenue_backlog WHERE Currency = ?", [currency]).fetchall() == [(0,)]
        assert_totals_show_what_the_views_show(con)
    finally:
        con.execute("ROLLBACK")


def test_the_totals_never_outlive_the_rows_they_sum(tmp_path):
    """line_period_totals is kept between assets' metadata; every change to the rows behind line_periods
    (a computation, a close, a reopen) must let the next metadata sum the rows as they are then."""
    generate(tmp_path / "base", lines=60, seed=8, months=5)
    generate_modifications(tmp_path / "base", tmp_path / "mods", fraction=0.3, seed=9)
    con = warehouse.connect(tmp_path / "w.duckdb")
    by_name = {s.name: s for s in TABLES}

    def shown() -> dict[str, object]:
        return {name: asset_metadata(con, by_name[name], rows=0)["totals_by_period"].value for name in NAIVE_TOTALS}

    def naive() -> dict[str, object]:
        return {name: markdown_table(con, q).value for name, q in NAIVE_TOTALS.items()}

    importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "base"))
    engine.compute(con, HOME)
    first = shown()
    assert first == naive()
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    assert shown() == naive()
    assert not importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "mods")).rejected
    engine.compute(con, HOME)
    after_batch = shown()
    assert after_batch == naive() and after_batch != first
    con.execute("BEGIN TRANSACTION")  # a reopen's own statements, before the computation that follows them
    sql.run_file(con, "close/reopen", period=202501)
    assert shown() == naive() != after_batch
    con.execute("ROLLBACK")
    close.reopen_period(con, 202501, home_currency=HOME, actor="t")
    assert shown() == naive()
    con.close()


def test_journal_totals_summed_from_the_nets_are_the_journal_lines_totals(con):
    """JOURNAL_TOTALS reads each open row's nets and whether its accounts are mapped; the journal_lines view
    unnests them into lines: per period the same lines, debits, credits and unmapped lines, also when some
    accounts are not mapped."""
    naive = (
        "SELECT Actg_Period, count(*) AS lines, fmt_money(sum(greatest(Net_Debit, 0))) AS debits, "
        "fmt_money(sum(greatest(-Net_Debit, 0))) AS credits, count(*) FILTER (WHERE Account_Id IS NULL) AS unmapped "
        "FROM journal_lines GROUP BY ALL ORDER BY 1"
    )
    totals = con.execute(JOURNAL_TOTALS).fetchall()
    assert totals == con.execute(naive).fetchall()
    assert {p for p, *_ in totals} >= {202501, 202502, 202503}  # frozen periods and open ones
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("UPDATE journal_line_accounts SET revenue_account = NULL, deferred_expense_account = NULL "
                    "WHERE line_no % 3 = 0")
        unmapped = con.execute(JOURNAL_TOTALS).fetchall()
        assert unmapped == con.execute(naive).fetchall()
        assert sum(u for *_, u in unmapped) > 0
    finally:
        con.execute("ROLLBACK")
