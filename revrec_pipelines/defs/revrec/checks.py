"""Asset checks for the invariants of SPEC §4, each explaining failures in business words."""


import dagster as dg

from revrec_pipelines.defs.metadata import _markdown
from revrec_pipelines.defs.resources import Warehouse
from revrec_pipelines.lib import sql
from revrec_pipelines.lib.close import run_check

SHOWN = 20


def _first_problem(frame) -> str:
    row = frame.row(0, named=True)
    if "problem" in row:
        where = " ".join(str(row[k]) for k in ("Actg_Period", "Sales_Order_Item_Id", "Sales_Order_Id", "Subsidiary_Id", "Account_Type")
                         if row.get(k) is not None)
        return f"{where}: {row['problem']}"
    return ", ".join(f"{k} {v}" for k, v in row.items() if v is not None)


def _result(frame, what: str, severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    """`what` is a counted noun phrase with {s} for the plural, e.g. "line{s} held for missing rates"."""
    n = frame.height
    return dg.AssetCheckResult(
        passed=n == 0,
        severity=severity,
        description=(f"{n} {what.format(s='' if n == 1 else 's')} — first: {_first_problem(frame)}" if n
                     else f"no {what.format(s='s')}"),
        metadata={"violations": dg.MetadataValue.int(n), "examples": dg.MetadataValue.md(_markdown(frame.head(SHOWN)))},
    )


@dg.asset_check(
    asset="line_periods",
    blocking=True,
    description="Every row rolls forward: beginning + billing + FX change − revenue + adjustment = ending position; "
    "beginning = previous ending; backlog and deferred expense roll forward too.",
)
def rollforward_identity(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return _result(run_check(con, "rollforward_identity"), "row{s} whose rollforward does not add up")


@dg.asset_check(
    asset="line_periods",
    description="Every non-usage line recognizes exactly its allocation over all periods (frozen, catch-up and future).",
)
def revenue_equals_allocation(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return _result(run_check(con, "revenue_equals_allocation"), "line{s} whose revenue differs from the allocation")


@dg.asset_check(
    asset="line_periods",
    description="No closed period changed since its close: the checksum of its frozen rows equals the one stored at the close.",
)
def closed_periods_unchanged(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        first, last = con.execute("SELECT min(period), max(period) FROM closed_periods").fetchall()[0]
        if first is None:
            return dg.AssetCheckResult(passed=True, description="no closed period yet")
        current = sql.render("close/period_hashes", first_period=first, last_period=last)
        frame = con.sql(sql.render("checks/closed_periods_unchanged", current_hashes=current)).pl()
        return _result(frame, "closed period{s} changed after the close")


@dg.asset_check(
    asset="journal_lines",
    blocking=True,
    description="Debits equal credits for every period and subsidiary.",
)
def journals_balanced(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return _result(run_check(con, "journals_balanced"), "period/subsidiary journal{s} out of balance")


@dg.asset_check(
    asset="journal_lines",
    description="Every journal line has an Account_Id from account_mappings (the line's subsidiary or the default).",
)
def accounts_mapped(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return _result(
            run_check(con, "unmapped_accounts"), "account type{s} without a mapping", dg.AssetCheckSeverity.WARN
        )


@dg.asset_check(
    asset="order_lines",
    blocking=True,
    description="For every sales order, the allocations of its active non-usage lines sum to their bookings.",
)
def allocation_sums_to_bookings(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        return _result(run_check(con, "allocation_sums"), "order{s} whose allocation does not sum to bookings")


@dg.asset_check(
    asset="held_lines",
    description="No line is held for a missing exchange rate (a held line blocks every close).",
)
def no_held_lines(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        frame = con.sql("SELECT Sales_Order_Item_Id, From_Currency, To_Currency, Rate_Needed_On, Reason FROM held_lines ORDER BY 1").pl()
        return _result(frame, "line{s} held for missing exchange rates", dg.AssetCheckSeverity.WARN)


@dg.asset_check(
    asset="raw_inputs",
    description="The latest import of every file was applied: lists every problem of the files whose latest version was rejected (file, row, column, value, reason).",
)
def no_rejected_files(warehouse: Warehouse) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        frame = con.sql(
            "WITH latest AS (SELECT source, path, arg_max(status, batch_id) AS status, max(batch_id) AS batch_id "
            "FROM import_ledger GROUP BY ALL) "
            "SELECT l.path, e.unit, e.row_number, e.column_name, e.value, e.reason FROM latest l "
            "JOIN import_errors e USING (batch_id) WHERE l.status = 'rejected' ORDER BY l.path, e.row_number"
        ).pl()
        return _result(frame, "problem{s} in rejected files")


revrec_checks = [
    rollforward_identity,
    revenue_equals_allocation,
    closed_periods_unchanged,
    journals_balanced,
    accounts_mapped,
    allocation_sums_to_bookings,
    no_held_lines,
]
ingest_checks = [no_rejected_files]
