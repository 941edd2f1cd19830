"""Rillet objects synced into the warehouse and mapped into the revenue model (SPEC §3)."""

import dagster as dg
from pydantic import Field

from revrec_pipelines.defs.metadata import markdown_table
from revrec_pipelines.defs.posting.resources import RilletResource
from revrec_pipelines.defs.resources import WAREHOUSE_POOL, RevrecSettings, Warehouse
from revrec_pipelines.lib.rillet_sync import RilletSyncError, sync


class RilletSyncConfig(dg.Config):
    full: bool = Field(default=False, description="Re-read every object and re-map it (e.g. after the mapping rules change).")


@dg.asset(
    group_name="rillet",
    kinds={"duckdb", "api"},
    pool=WAREHOUSE_POOL,
    description=(
        "Accounts, subsidiaries, customers, products, contracts with items, invoices, credit memos and invoice "
        "payments pulled from the Rillet API (incrementally with updated.gt where Rillet offers it) into rillet_* "
        "raw tables, and mapped into the same model as files: contracts → sales orders, invoices → invoice lines, "
        "credit memos → negative invoice lines. A failed sync changes nothing and does not advance the cursor. "
        "Without RILLET_API_KEY it does nothing."
    ),
)
def rillet_objects(
    context: dg.AssetExecutionContext, config: RilletSyncConfig, warehouse: Warehouse, revrec: RevrecSettings,
    rillet: RilletResource,
) -> dg.MaterializeResult:
    if not rillet.api_key:
        context.log.info("Rillet is not configured (RILLET_API_KEY is not set): nothing to sync")
        return dg.MaterializeResult(metadata={"summary": dg.MetadataValue.md("Rillet is not configured: set RILLET_API_KEY to sync.")})
    client = rillet.client()
    try:
        with warehouse.connect() as con:
            try:
                report = sync(con, client, home_currency=revrec.home_currency, full=config.full, run_id=context.run_id,
                              progress=context.log.info)
            except RilletSyncError as exc:
                raise dg.Failure(description=str(exc)) from exc
            state = markdown_table(con, "SELECT * EXCLUDE (base_url) FROM rillet_sync_state ORDER BY 1")
    finally:
        client.close()
    for warning in report.warnings:
        context.log.warning(warning)
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(report.summary()),
            "objects_read": dg.MetadataValue.int(report.objects_read),
            "objects_changed": dg.MetadataValue.int(report.objects_changed),
            "rows_new": dg.MetadataValue.int(report.rows_new),
            "rows_changed": dg.MetadataValue.int(report.rows_changed),
            "cursors": state,
        }
    )


rillet_sync_job = dg.define_asset_job(
    "rillet_sync",
    selection=dg.AssetSelection.assets("rillet_objects", "analyst_warehouse") | dg.AssetSelection.groups("revrec"),
    description="Sync Rillet objects incrementally, then recompute the revenue tables.",
    tags={"revrec/job": "rillet_sync"},
)

rillet_sync_schedule = dg.ScheduleDefinition(
    name="rillet_sync_schedule",
    job=rillet_sync_job,
    cron_schedule="30 0 * * *",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.STOPPED,  # on once RILLET_API_KEY is set: see docs/operations.md
    description="Sync Rillet daily at 00:30 America/New_York (after the file import).",
)
