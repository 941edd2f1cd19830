"""Period close and reopen (SPEC §5), launchable from the UI's Launchpad with the period as config."""


import dagster as dg
from pydantic import Field

from revrec_pipelines.defs.metadata import markdown_table
from revrec_pipelines.defs.resources import WAREHOUSE_POOL, RevrecSettings, Warehouse
from revrec_pipelines.lib.close import CloseRefused, close_period, reopen_period
from revrec_pipelines.lib.periods import InvalidPeriod, parse_period

CLOSE_STATE_QUERY = (
    "SELECT period, close_number, exported AS close_exports_due, closed_at, closed_by FROM closed_periods "
    "ORDER BY period DESC LIMIT 24"
)
AUDIT_QUERY = "SELECT event_id, action, period, close_number, actor, event_at, details FROM close_audit ORDER BY event_id DESC LIMIT 20"


class ClosePeriodConfig(dg.Config):
    period: str = Field(description="The period to close, YYYYMM (e.g. 202501). It must be the first open period; the very first close may be any period and closes all earlier ones with it.")
    closed_by: str = Field(default="dagster-ui", description="Who closes the period (recorded in close_audit).")


class ReopenPeriodConfig(dg.Config):
    period: str = Field(description="The period to reopen, YYYYMM. It and every later closed period reopen.")
    reopened_by: str = Field(default="dagster-ui", description="Who reopens the period (recorded in close_audit).")


def _period(value: str) -> int:
    try:
        return parse_period(value)
    except InvalidPeriod as exc:
        raise dg.Failure(description=str(exc)) from exc


@dg.asset(
    group_name="close",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=["line_periods", "journal_lines", "invoice_register", "orders", "held_lines"],
    description=(
        "Closed accounting periods. Materializing it closes the period given in config: blocking checks "
        "(first open period, no held lines, every account type mapped, every invariant), then everything the "
        "period reports is frozen. A refused close says exactly why. The close-period exports and posting "
        "follow in a run requested by the period_closed sensor."
    ),
)
def closed_periods(
    context: dg.AssetExecutionContext, config: ClosePeriodConfig, warehouse: Warehouse, revrec: RevrecSettings
) -> dg.MaterializeResult:
    period = _period(config.period)
    with warehouse.connect() as con:
        try:
            result = close_period(
                con,
                period,
                home_currency=revrec.home_currency,
                actor=config.closed_by,
                run_id=context.run_id,
                recompute=False,  # the close job materializes the revrec assets first, in the same run
                progress=context.log.info,
            )
        except CloseRefused as exc:
            context.log.error(str(exc))
            raise dg.Failure(description=str(exc)) from None
        state = markdown_table(con, CLOSE_STATE_QUERY)
        audit = markdown_table(con, AUDIT_QUERY)
    return dg.MaterializeResult(
        metadata={
            "action": "close",
            "period": dg.MetadataValue.int(period),
            "close_number": dg.MetadataValue.int(result.close_number),
            "periods_frozen": dg.MetadataValue.int(len(result.periods_frozen)),
            "rows_frozen": dg.MetadataValue.int(result.rows_frozen),
            "closed_periods": state,
            "audit": audit,
        }
    )


@dg.op(
    pool=WAREHOUSE_POOL,
    description="Reopen a period and every later closed period; closing again recomputes them and overwrites their exports.",
)
def reopen_period_op(context: dg.OpExecutionContext, config: ReopenPeriodConfig, warehouse: Warehouse, revrec: RevrecSettings):
    period = _period(config.period)
    with warehouse.connect() as con:
        try:
            result = reopen_period(
                con, period, home_currency=revrec.home_currency, actor=config.reopened_by, run_id=context.run_id,
                progress=context.log.info,
            )
        except CloseRefused as exc:
            raise dg.Failure(description=str(exc)) from exc
        state = markdown_table(con, CLOSE_STATE_QUERY)
    context.log.info(f"reopened {', '.join(map(str, result.periods_reopened))}")
    yield dg.AssetMaterialization(
        asset_key="closed_periods",
        description=f"reopened {period} and later periods",
        metadata={
            "action": "reopen",
            "period": dg.MetadataValue.int(period),
            "periods_reopened": dg.MetadataValue.json(result.periods_reopened),
            "closed_periods": state,
        },
    )
    yield dg.Output(None)


@dg.job(
    name="reopen_period",
    description="Reopen a closed period (config: period YYYYMM) and every later one.",
    tags={"revrec/job": "reopen"},
)
def reopen_period_job():
    reopen_period_op()
