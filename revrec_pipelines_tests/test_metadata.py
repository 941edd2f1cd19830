"""The assets' UI metadata read the cheap way shows what the straightforward query over the view shows:
previews read only the first periods that hold their rows, the chart sums line_periods once."""

import pytest

from revrec_pipelines.defs.metadata import preview_frame
from revrec_pipelines.defs.revrec.assets import CHART, JOURNAL_TOTALS, TABLES
from revrec_pipelines.lib import close, engine, importer, sources, warehouse
from revrec_pipelines.lib.generator import generate, generate_modifications

HOME = "USD"
# the chart as first written: the totals summed once for the rows and once more for the bars' scale
CHART_TWO_PASSES = (
    "SELECT Actg_Period, fmt_money(sum(Revenue_Home)) AS revenue, fmt_money(sum(Ending_Unearned_Home)) AS deferred, "
    "bar(CAST(sum(Revenue_Home) AS DOUBLE), 0, (SELECT max(s) FROM (SELECT sum(Revenue_Home) AS s FROM line_periods "
    "GROUP BY Actg_Period)) + 1, 30) AS revenue_chart FROM line_periods GROUP BY ALL ORDER BY 1"
)


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


def test_the_chart_sums_line_periods_once_and_shows_what_two_passes_show(con):
    assert con.execute(CHART).fetchall() == con.execute(CHART_TWO_PASSES).fetchall()
    assert len(con.execute(CHART).fetchall()) > 3


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
