"""Ingest: input files from the configured source into the warehouse's raw tables (SPEC §2)."""


import dagster as dg

from revrec_pipelines.defs.metadata import markdown_table
from revrec_pipelines.defs.resources import WAREHOUSE_POOL, RevrecSettings, Warehouse
from revrec_pipelines.lib.filetypes import APPLY_ORDER, FILE_TYPES
from revrec_pipelines.lib.importer import import_from_source
from revrec_pipelines.lib.sources import SourceError, open_source


class ImportConfig(dg.Config):
    """Override the source or incremental mode for one run (defaults: REVREC_SOURCE, REVREC_INCREMENTAL)."""

    source: str | None = None
    incremental: bool | None = None


@dg.asset(
    group_name="ingest",
    kinds={"duckdb", "csv"},
    pool=WAREHOUSE_POOL,
    description=(
        "Input files (customers, products, subsidiaries, account mappings, exchange rates, sales orders, "
        "invoices, usage, commissions) imported from the source into the raw_* tables. One file is one "
        "atomic batch; a file with a bad row is rejected whole and its problems are listed in "
        "import_errors. Earlier versions of every row are kept with their batch id."
    ),
)
def raw_inputs(
    context: dg.AssetExecutionContext, config: ImportConfig, warehouse: Warehouse, revrec: RevrecSettings
) -> dg.MaterializeResult:
    source_uri = config.source or revrec.source
    incremental = revrec.incremental if config.incremental is None else config.incremental
    try:
        source = open_source(source_uri)
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from exc
    with warehouse.connect() as con:
        try:
            report = import_from_source(
                con, source, incremental=incremental, run_id=context.run_id, progress=context.log.info
            )
        except SourceError as exc:
            raise dg.Failure(description=f"Could not read {source_uri}: {exc}") from exc
        counts = {
            t: con.execute(f"SELECT count(*) FROM {FILE_TYPES[t].table} WHERE _is_current").fetchall()[0][0]
            for t in APPLY_ORDER
        }
        recent = markdown_table(
            con,
            "SELECT batch_id, path, status, rows_new, rows_changed, rows_unchanged, error_count, finished_at "
            f"FROM import_batches WHERE run_id = '{context.run_id}' ORDER BY batch_id",
        )
        errors = markdown_table(
            con,
            "SELECT e.path, e.unit, e.row_number, e.column_name, e.value, e.reason FROM import_errors e "
            f"JOIN import_batches b USING (batch_id) WHERE b.run_id = '{context.run_id}' "
            "ORDER BY e.batch_id, row_number LIMIT 50",
        )
    metadata = {
        "source": dg.MetadataValue.text(source_uri),
        "files_applied": dg.MetadataValue.int(report.count("applied")),
        "files_unchanged": dg.MetadataValue.int(report.count("unchanged")),
        "files_skipped": dg.MetadataValue.int(report.count("skipped")),
        "files_rejected": dg.MetadataValue.int(report.count("rejected")),
        "current_rows": dg.MetadataValue.json(counts),
        "batches_this_run": recent,
    }
    if report.rejected:
        # The files that passed are applied and recomputed; the run fails at its end (import_report), and
        # the no_rejected_files check on this asset lists every problem.
        context.log.error(report.failure_message())
        metadata["errors"] = errors
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="ingest",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=["raw_inputs", "line_periods", "journal_lines", "invoice_register", "orders"],
    description=(
        "The outcome of this run's import, checked once the revenue tables are recomputed from the files that "
        "passed: fails the run, with every rejected file, row, column and reason, if any file was rejected."
    ),
)
def import_report(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    from revrec_pipelines.lib.importer import failure_message_for_run

    with warehouse.connect() as con:
        message = failure_message_for_run(con, context.run_id)
        batches = markdown_table(
            con,
            "SELECT status, count(*) AS files, sum(rows_new) AS rows_new, sum(rows_changed) AS rows_changed, "
            f"sum(error_count) AS problems FROM import_batches WHERE run_id = '{context.run_id}' GROUP BY ALL ORDER BY 1",
        )
    if message:
        raise dg.Failure(description=message, metadata={"batches": batches})
    return dg.MaterializeResult(metadata={"batches": batches})
