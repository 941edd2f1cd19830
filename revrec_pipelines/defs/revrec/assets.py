"""The revenue engine as assets (SPEC §4): one asset per table, its SQL in sql/revrec/<table>.sql."""


from dataclasses import dataclass

import dagster as dg

from revrec_pipelines.defs.metadata import markdown_table, table_metadata
from revrec_pipelines.defs.resources import WAREHOUSE_POOL, RevrecSettings, Warehouse
from revrec_pipelines.lib import engine, sql

# The line-period assets' totals per period and the chart read line_period_totals: line_periods summed once per
# period and currency (sql/metadata/line_period_totals.sql) rather than once per asset, each pass over its ~16
# rows per line (at a million lines 0.4–0.8 s each, seven of them). Money sums show as the views' own do:
# DECIMAL(38,2) in the line's currency (what summing their money() columns gives), fmt_money in home currency.
LINE_PERIOD_TOTALS_TABLE = "line_period_totals"


def _money_sum(column: str, alias: str) -> str:
    return f"CAST(CAST(sum({column}) AS DECIMAL(38,0)) * 0.01 AS DECIMAL(38,2)) AS {alias}"


# the bars' scale is the largest of the totals just summed
CHART = (
    "WITH totals AS MATERIALIZED (SELECT Actg_Period, sum(Revenue_Home) AS revenue, sum(Ending_Unearned_Home) AS deferred "
    f"FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL) "
    "SELECT Actg_Period, fmt_money(revenue) AS revenue, fmt_money(deferred) AS deferred, "
    "bar(CAST(revenue AS DOUBLE), 0, (SELECT max(revenue) FROM totals) + 1, 30) AS revenue_chart FROM totals ORDER BY 1"
)
VIEW_TOTALS = {
    "unearned_revenue_rollforward": "SELECT Actg_Period, CAST(sum(line_rows) AS BIGINT) AS lines, "
    + ", ".join([
        _money_sum("New_Billing", "billing"), _money_sum("Revenue", "revenue"),
        _money_sum("Adjustment_To_Unearned_Revenue", "adjustment"), _money_sum("Ending_Unearned_Revenue", "unearned"),
        _money_sum("Ending_Unbilled_Receivable", "unbilled"),
    ]) + f" FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL ORDER BY 1",
    "revenue_waterfall": f"SELECT Actg_Period, Currency, {_money_sum('Revenue', 'revenue')} "
    f"FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL ORDER BY 1, 2",
    "deferred_revenue_balance": f"SELECT Actg_Period, Currency, {_money_sum('Ending_Unearned_Revenue', 'deferred')} "
    f"FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL ORDER BY 1, 2",
    # the backlog view shows only the lines with a backlog: a period and currency with none has no row there
    "revenue_backlog": "SELECT Actg_Period, Currency, "
    + ", ".join([
        _money_sum("Backlog_New_Booking", "new_booking"), _money_sum("Backlog_Revenue", "revenue"),
        _money_sum("Ending_Backlog", "backlog"),
    ]) + f" FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL HAVING sum(backlog_rows) > 0 ORDER BY 1, 2",
    "deferred_expenses": "SELECT Actg_Period, Currency, "
    + ", ".join([
        _money_sum("New_Commissions", "commissions"), _money_sum("Commission_Amortization", "amortization"),
        _money_sum("Ending_Deferred_Expense", "deferred_expense"),
    ]) + f" FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL ORDER BY 1, 2",
}
PERIOD_TOTALS = (
    "SELECT Actg_Period, CAST(sum(line_rows) AS BIGINT) AS line_rows, fmt_money(sum(Revenue_Home)) AS revenue_home, "
    "fmt_money(sum(New_Billing_Home)) AS billing_home, fmt_money(sum(Ending_Unearned_Home)) AS deferred_home, "
    f"fmt_money(sum(Ending_Unbilled_Home)) AS unbilled_home FROM {LINE_PERIOD_TOTALS_TABLE} GROUP BY ALL ORDER BY 1"
)
# the assets whose metadata reads line_period_totals
READS_LINE_PERIOD_TOTALS = frozenset({"line_periods", *VIEW_TOTALS})


def ensure_line_period_totals(con) -> None:
    """Sum line_periods into line_period_totals unless the sums of its current rows are there already."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND table_name = ?", [LINE_PERIOD_TOTALS_TABLE]
    ).fetchall()[0][0]
    if not exists:
        sql.run_file(con, "metadata/line_period_totals")


# Per period: journal lines, debits, credits and lines without an Account_Id. The open periods' are summed from
# each row's seven nets (journal_line_nets; a line is a non-zero net) and whether its accounts are mapped,
# without assembling the lines (at a million lines 2.4–2.5 s, against 4.0–4.9 s through the journal_lines view).
_NETS = engine.JOURNAL_NETS
JOURNAL_TOTALS = (
    "SELECT Actg_Period, sum(lines) AS lines, fmt_money(sum(debits)) AS debits, fmt_money(sum(credits)) AS credits, "
    "sum(unmapped) AS unmapped FROM ("
    "SELECT Actg_Period, count(*) AS lines, sum(greatest(Net_Debit, 0)) AS debits, "
    "sum(greatest(-Net_Debit, 0)) AS credits, count(*) FILTER (WHERE Account_Id IS NULL) AS unmapped "
    "FROM frozen_journal_lines GROUP BY ALL "
    "UNION ALL SELECT Actg_Period, "
    "sum(" + " + ".join(f"CAST({n}_net <> 0 AS INTEGER)" for n in _NETS) + "), "
    "sum(" + " + ".join(f"greatest({n}_net, 0)" for n in _NETS) + "), "
    "sum(" + " + ".join(f"greatest(-{n}_net, 0)" for n in _NETS) + "), "
    "sum(" + " + ".join(f"CAST({n}_net <> 0 AND {n}_unmapped AS INTEGER)" for n in _NETS) + ") "
    "FROM journal_line_nets JOIN (SELECT line_no, "
    + ", ".join(f"{n}_account IS NULL AS {n}_unmapped" for n in _NETS)
    + " FROM journal_line_accounts) USING (line_no) GROUP BY ALL"
    ") GROUP BY ALL ORDER BY 1"
)


@dataclass(frozen=True)
class TableAsset:
    name: str
    deps: tuple[str, ...]
    description: str
    preview_order: str | None = None
    totals_by_period: str | None = None
    kind: str = "table"


TABLES: tuple[TableAsset, ...] = (
    TableAsset(
        "order_lines", ("raw_inputs", "rillet_objects"),
        "One row per contract line: sales-order lines and invoice-as-contract lines (<Invoice_Number>-<Invoice_Line>), "
        "with the effective revenue rule and subsidiary, Bookings_Amount = round(Quantity × Sale_Price) and the "
        "relative-SSP allocation by largest remainder (cents).",
        preview_order="Sales_Order_Id, Sales_Order_Item_Id",
    ),
    TableAsset(
        "rate_answers", ("order_lines",),
        "Every exchange rate the engine needs (line → home at the order date; invoice → line currency at the "
        "invoice and order dates), resolved as direct, exact inverse or through home, kept as exact fractions.",
        preview_order="rate_date, from_currency, to_currency",
    ),
    TableAsset(
        "invoice_events", ("rate_answers",),
        "One row per invoice line on its contract line: New_Billing in the line's currency and the "
        "Foreign_Currency_Change of invoices in another currency (cents).",
        preview_order="Billing_Date, Invoice_Number, Invoice_Line",
    ),
    TableAsset(
        "held_lines", ("invoice_events",),
        "Exceptions: contract lines held because an exchange rate is missing, with the currency pair and date "
        "needed. Held lines are left out of journals and exports, and no period can close while one exists.",
        preview_order="Sales_Order_Item_Id",
    ),
    TableAsset(
        "line_series", ("held_lines",),
        "The current (ideal) value per line and month index of the series that come from events — billing and FX "
        "change (invoices), a usage line's revenue (usage), commissions and their amortization — in line and home "
        "currency, before closed periods apply. The revenue schedule and booking of other lines follow from their "
        "terms and are laid out by line_periods. A view over line_series_amounts (the rows by integer key); also "
        "writes line_keys (each line's integer key and home rate).",
        preview_order="Sales_Order_Item_Id, mi",
    ),
    TableAsset(
        "line_periods", ("line_series",),
        "What every line reports in every period: frozen rows for closed periods, the catch-up in the first open "
        "period, the current schedule after it; with the rollforward, backlog and deferred expense balances in "
        "line and home currency (cents). The base of every report and export.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id",
        totals_by_period=PERIOD_TOTALS,
    ),
    TableAsset(
        "journal_lines", ("line_periods",),
        "Journal lines in home currency: per line, period and account type the net debit (positive) or credit "
        "(negative), with Account_Id from account_mappings, Class and Link_Id.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id, Account_Type",
        totals_by_period=JOURNAL_TOTALS,
    ),
    TableAsset(
        "invoice_register", ("line_periods",),
        "Invoice lines by the period they are reported in (a late invoice in the first open period), with their "
        "own amount and currency.",
        preview_order="Actg_Period, Invoice_Number, Invoice_Line",
        totals_by_period="SELECT Actg_Period, Currency, count(*) AS lines, fmt_money(sum(Billing_Amount)) AS billed FROM invoice_register GROUP BY ALL ORDER BY 1, 2",
    ),
    TableAsset(
        "orders", ("line_periods",),
        "Current terms of every contract line that is not held, with Allocated_Revenue, Duration (hundredths of a "
        "month) and MRR, as exported in the orders files.",
        preview_order="Sales_Order_Id, Sales_Order_Item_Id",
    ),
    TableAsset(
        "unearned_revenue_rollforward", ("line_periods",),
        "View: the unearned-revenue rollforward per line and period in line currency, amounts as DECIMAL.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id", kind="view",
    ),
    TableAsset(
        "revenue_waterfall", ("line_periods",),
        "View: recognized revenue per line and period, in line and home currency.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id", kind="view",
    ),
    TableAsset(
        "deferred_revenue_balance", ("line_periods",),
        "View: ending deferred (unearned) revenue per line and period, in line currency.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id", kind="view",
    ),
    TableAsset(
        "revenue_backlog", ("line_periods",),
        "View: revenue backlog (RPO) per non-usage line and period: beginning, new booking, revenue, ending.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id", kind="view",
    ),
    TableAsset(
        "deferred_expenses", ("line_periods",),
        "View: deferred commission expense per line and period: beginning, new commissions, amortization, ending.",
        preview_order="Actg_Period, Sales_Order_Id, Sales_Order_Item_Id", kind="view",
    ),
)


def _build(spec: TableAsset) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.name,
        group_name="revrec",
        kinds={"duckdb", "sql"},
        deps=list(spec.deps),
        pool=WAREHOUSE_POOL,
        description=spec.description,
        tags={"revrec/kind": spec.kind},
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: Warehouse, revrec: RevrecSettings) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            result = engine.run_step(con, spec.name, revrec.home_currency)
            context.log.info(f"{spec.name}: {result.rows:,} rows in {result.seconds:.2f}s")
            if spec.name == "held_lines" and result.rows:
                context.log.warning(f"{result.rows} line(s) held for missing exchange rates: see held_lines")
            metadata = asset_metadata(
                con, spec, {"seconds": dg.MetadataValue.float(round(result.seconds, 3))}, rows=result.rows
            )
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def asset_metadata(
    con, spec: TableAsset, extra: dict[str, object] | None = None, rows: int | None = None
) -> dict[str, object]:
    """What the table's asset shows in the UI after its step, given the rows the step counted (`revrec bench`
    times it for every table)."""
    extra = dict(extra or {})
    if spec.name in READS_LINE_PERIOD_TOTALS:
        ensure_line_period_totals(con)
    if spec.name in ("line_periods", "revenue_waterfall", "unearned_revenue_rollforward"):
        # revenue and deferred balance by period (home currency), as a bar chart the UI renders
        extra["chart"] = markdown_table(con, CHART)
    return table_metadata(
        con, spec.name, preview_order=spec.preview_order,
        totals_by_period=spec.totals_by_period or VIEW_TOTALS.get(spec.name), extra=extra, rows=rows,
    )


revrec_assets = [_build(spec) for spec in TABLES]
