"""When a period closes, request the run that writes its exports and posts its journals (SPEC §5)."""


import dagster as dg

from revrec_pipelines.defs.jobs import close_outputs_job

INLINE_TAG = "revrec/close_outputs"  # set to "inline" by `revrec close`, which runs the outputs itself


def close_outputs_run_config(period: int) -> dict:
    return {
        "ops": {
            "close_period_exports": {"config": {"period": str(period)}},
            "journal_postings": {"config": {"period": str(period)}},
        }
    }


@dg.asset_sensor(
    asset_key=dg.AssetKey("closed_periods"),
    job=close_outputs_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A period was closed: write its close-period exports and post its journals (run key: period and close number).",
)
def period_closed_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    materialization = asset_event.asset_materialization
    if materialization is None:
        return dg.SkipReason("not a materialization")
    md = materialization.metadata
    action = md.get("action")
    if action is None or getattr(action, "value", action) != "close":
        return dg.SkipReason("a reopen: nothing to export until the period closes again")
    run = context.instance.get_run_by_id(asset_event.run_id) if asset_event.run_id else None
    if run is not None and run.tags.get(INLINE_TAG) == "inline":
        return dg.SkipReason("the close was run by `revrec close`, which wrote the exports itself")
    period = md["period"].value
    close_number = md["close_number"].value
    return dg.RunRequest(
        run_key=f"close-{period}-{close_number}",
        run_config=close_outputs_run_config(period),
        tags={"revrec/period": str(period), "revrec/close_number": str(close_number)},
    )
