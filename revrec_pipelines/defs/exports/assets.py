"""Close-period export files (SPEC §6) for a closed period, to REVREC_EXPORT_DEST."""


import time

import dagster as dg
from pydantic import Field

from revrec_pipelines.defs.resources import WAREHOUSE_POOL, RevrecSettings, Warehouse
from revrec_pipelines.lib.close import last_closed
from revrec_pipelines.lib.exports import write_close_exports
from revrec_pipelines.lib.periods import InvalidPeriod, parse_period
from revrec_pipelines.lib.sources import SourceError, open_destination


class ClosedPeriodConfig(dg.Config):
    period: str | None = Field(default=None, description="A closed period YYYYMM; default: the last closed period.")


def resolve_period(con, value: str | None) -> int:
    if value:
        try:
            return parse_period(value)
        except InvalidPeriod as exc:
            raise dg.Failure(description=str(exc)) from exc
    last = last_closed(con)
    if last is None:
        raise dg.Failure(description="No period is closed yet: close one first (revrec close YYYYMM or the close_period job).")
    return last


@dg.asset(
    group_name="exports",
    kinds={"csv"},
    pool=WAREHOUSE_POOL,
    deps=["closed_periods"],
    description=(
        "The close-period export files of a closed period: closedperiodexport-<type>-<YYYYMM>.csv for the nine "
        "types of SPEC §6, written atomically to REVREC_EXPORT_DEST and overwritten by a re-close."
    ),
)
def close_period_exports(
    context: dg.AssetExecutionContext, config: ClosedPeriodConfig, warehouse: Warehouse, revrec: RevrecSettings
) -> dg.MaterializeResult:
    try:
        destination = open_destination(revrec.export_dest)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    with warehouse.connect() as con:
        period = resolve_period(con, config.period)
        try:
            files = write_close_exports(con, period, destination)
        except (SourceError, ValueError) as exc:
            raise dg.Failure(description=f"Close-period export of {period} failed: {exc}") from exc
    for f in files:
        context.log.info(f"wrote {f.name} ({f.rows} rows) to {destination.uri}")
    return dg.MaterializeResult(
        metadata={
            "period": dg.MetadataValue.int(period),
            "destination": dg.MetadataValue.text(destination.uri),
            "files": dg.MetadataValue.md(
                "| file | rows |\n|---|---|\n" + "\n".join(f"| {f.name} | {f.rows} |" for f in files)
            ),
        }
    )


@dg.asset(
    group_name="exports",
    kinds={"csv"},
    pool=WAREHOUSE_POOL,
    deps=["line_periods", "journal_lines", "invoice_register", "orders", "held_lines"],
    description=(
        "Continuous export: each run with a change writes continuousexport-<type>-<Version>.csv with every row (all "
        "periods) of each contract line whose rows of that type changed since they were last exported, plus a "
        "control file; a consumer that replaces a line's rows by those of its latest Version rebuilds the tables. "
        "Journals go out once their period is closed; held lines wait for their rate. No change, no files."
    ),
)
def continuous_export(context: dg.AssetExecutionContext, warehouse: Warehouse, revrec: RevrecSettings) -> dg.MaterializeResult:
    from revrec_pipelines.lib.continuous import run_continuous_export

    try:
        destination = open_destination(revrec.export_dest)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    with warehouse.connect() as con:
        try:
            result = run_continuous_export(con, destination, progress=context.log.info)
        except SourceError as exc:
            raise dg.Failure(description=f"Continuous export failed, nothing recorded (the next run writes the same version): {exc}") from exc
    return dg.MaterializeResult(
        metadata={
            "version": dg.MetadataValue.int(result.version) if result.version else dg.MetadataValue.text("no change"),
            "candidates": dg.MetadataValue.int(result.candidates),
            "lines_by_type": dg.MetadataValue.json(result.items_by_type),
            "rows_by_type": dg.MetadataValue.json(result.rows_by_type),
            "tombstones": dg.MetadataValue.int(result.tombstones),
            "files": dg.MetadataValue.md("\n".join(f"- {f}" for f in result.files) or "_none_"),
            "destination": dg.MetadataValue.text(destination.uri),
        }
    )


continuous_export_job = dg.define_asset_job(
    "continuous_export_job",
    selection=dg.AssetSelection.assets("continuous_export"),
    description="Write the continuous export change files (SPEC §6) for everything that changed since the last run.",
    tags={"revrec/job": "continuous_export"},
)

continuous_export_schedule = dg.ScheduleDefinition(
    name="continuous_export_schedule",
    job=continuous_export_job,
    cron_schedule="0 23 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Continuous export daily at 23:00 UTC.",
)


@dg.asset(
    group_name="exports",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=["unearned_revenue_rollforward", "revenue_waterfall", "deferred_revenue_balance", "revenue_backlog",
          "deferred_expenses", "journal_lines", "invoice_register", "orders", "held_lines", "closed_periods"],
    description=(
        "A read-only copy of the whole warehouse for analysts (<warehouse>-analyst.duckdb), refreshed after every "
        "computation and swapped in atomically: open it with `duckdb -readonly` or any BI tool while runs keep "
        "writing the live warehouse."
    ),
)
def analyst_warehouse(warehouse: Warehouse) -> dg.MaterializeResult:
    from revrec_pipelines.lib.snapshot import snapshot_path, write_snapshot

    started = time.perf_counter()
    with warehouse.connect() as con:
        target = write_snapshot(con, snapshot_path(warehouse.database))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(target)),
            "bytes": dg.MetadataValue.int(target.stat().st_size),
            "seconds": dg.MetadataValue.float(round(time.perf_counter() - started, 3)),
        }
    )
