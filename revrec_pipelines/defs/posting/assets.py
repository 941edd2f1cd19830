"""Journal posting (SPEC §5): after a close, one entry per subsidiary is planned from the frozen journals
and, when REVREC_POSTING is rillet or intacct, posted. `post_journals` posts Pending and Failed entries."""

import dagster as dg
from pydantic import Field

from revrec_pipelines.defs.exports.assets import resolve_period
from revrec_pipelines.defs.metadata import markdown_table
from revrec_pipelines.defs.posting.resources import IntacctResource, RilletResource
from revrec_pipelines.defs.resources import WAREHOUSE_POOL, RevrecSettings, Warehouse
from revrec_pipelines.lib.posting import plan_entries, post_pending
from revrec_pipelines.lib.posting_targets import IntacctTarget, RilletTarget

STATUS_QUERY = (
    "SELECT period, name, target, status, fmt_money(total_debit) AS debit, fmt_money(total_credit) AS credit, "
    "target_id, attempts, left(coalesce(error, ''), 160) AS error FROM posting_entries {where} "
    "ORDER BY period DESC, subsidiary_id NULLS FIRST, sequence LIMIT 40"
)


class PostingConfig(dg.Config):
    period: str | None = Field(default=None, description="A closed period YYYYMM; default: the last closed period.")


class PostJournalsConfig(dg.Config):
    period: str | None = Field(default=None, description="Only this period (YYYYMM); default: every period with Pending or Failed entries.")


def _target(revrec: RevrecSettings, rillet: RilletResource, intacct: IntacctResource):
    if revrec.posting == "rillet":
        return RilletTarget(rillet.client(), revrec.posting_dimensions)
    if revrec.posting == "intacct":
        return IntacctTarget(intacct.client(), revrec.posting_dimensions)
    return None


def _post(context, con, target, period):
    report = post_pending(con, target, period=period, progress=context.log.info)
    return report


@dg.asset(
    group_name="posting",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=["closed_periods"],
    description=(
        "Journal entries of a closed period, one per subsidiary (items netted per account and posted dimensions), "
        "planned for the posting target and posted when REVREC_POSTING is rillet or intacct. A re-close after a "
        "reopen plans only the difference, as an adjusting entry. Status per entry: Pending, Success (target id), "
        "Failed (the target's words)."
    ),
)
def journal_postings(
    context: dg.AssetExecutionContext,
    config: PostingConfig,
    warehouse: Warehouse,
    revrec: RevrecSettings,
    rillet: RilletResource,
    intacct: IntacctResource,
) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        period = resolve_period(con, config.period)
        if revrec.posting in ("off", "none"):
            preview = markdown_table(
                con,
                "SELECT coalesce(Subsidiary_Id, 'default') AS subsidiary, Account_Id, fmt_money(sum(greatest(Net_Debit, 0))) AS debit, "
                f"fmt_money(sum(greatest(-Net_Debit, 0))) AS credit FROM frozen_journal_lines WHERE Actg_Period = {period} "
                "GROUP BY ALL ORDER BY 1, 2",
            )
            context.log.info("posting is off (REVREC_POSTING=off): journals are exported, not posted")
            return dg.MaterializeResult(metadata={"period": period, "posting": "off", "journal_totals": preview})
        plan = plan_entries(
            con, period, target=revrec.posting, home_currency=revrec.home_currency, dimensions=revrec.posting_dimensions
        )
        for sub in plan.waiting:
            context.log.warning(f"{sub}: an earlier entry may have reached {revrec.posting}; it is resolved before planning more")
        target = _target(revrec, rillet, intacct)
        report = _post(context, con, target, period)
        status = markdown_table(con, STATUS_QUERY.format(where=f"WHERE period = {period}"))
    metadata = {
        "period": dg.MetadataValue.int(period),
        "target": revrec.posting,
        "planned": dg.MetadataValue.int(len(plan.planned)),
        "posted": dg.MetadataValue.int(len(report.succeeded)),
        "failed": dg.MetadataValue.int(len(report.failed)),
        "entries": status,
    }
    if report.failed:
        raise dg.Failure(description=report.failure_message(), metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.op(pool=WAREHOUSE_POOL, description="Post every Pending and Failed journal entry (of one period, or all) to the posting target.")
def post_journals_op(
    context: dg.OpExecutionContext,
    config: PostJournalsConfig,
    warehouse: Warehouse,
    revrec: RevrecSettings,
    rillet: RilletResource,
    intacct: IntacctResource,
):
    if revrec.posting in ("off", "none"):
        raise dg.Failure(description="Posting is off: set REVREC_POSTING to rillet or intacct (and its credentials).")
    target = _target(revrec, rillet, intacct)
    with warehouse.connect() as con:
        period = resolve_period(con, config.period) if config.period else None
        report = _post(context, con, target, period)
        status = markdown_table(con, STATUS_QUERY.format(where=f"WHERE period = {period}" if period else ""))
    yield dg.AssetMaterialization(
        asset_key="journal_postings",
        description=f"posted {len(report.succeeded)}, failed {len(report.failed)}",
        metadata={"posted": len(report.succeeded), "failed": len(report.failed), "entries": status},
    )
    if report.failed:
        raise dg.Failure(description=report.failure_message())
    yield dg.Output(None)


@dg.job(description="Post Pending and Failed journal entries (config: optional period YYYYMM).", tags={"revrec/job": "post"})
def post_journals():
    post_journals_op()


post_journals_schedule = dg.ScheduleDefinition(
    name="post_journals_schedule",
    job=post_journals,
    cron_schedule="0 1 * * *",
    execution_timezone="America/New_York",
    run_config={"ops": {"post_journals_op": {"config": {}}}},
    default_status=dg.DefaultScheduleStatus.STOPPED,  # posting follows every close; this retries on a frequency
    description="Post Pending and Failed journal entries daily at 01:00 America/New_York (turn on when posting is on).",
)
