"""The one Definitions object of revrec-pipelines: every asset, check, job, schedule, sensor and resource."""

from __future__ import annotations

import dagster as dg

from revrec_pipelines.defs.close.assets import closed_periods
from revrec_pipelines.defs.close.sensors import period_closed_sensor
from revrec_pipelines.defs.exports.assets import (
    analyst_warehouse,
    close_period_exports,
    continuous_export,
    continuous_export_job,
    continuous_export_schedule,
)
from revrec_pipelines.defs.ingest.assets import import_report, raw_inputs
from revrec_pipelines.defs.ingest.schedules import build_import_schedule
from revrec_pipelines.defs.ingest.sensors import new_file_sensor
from revrec_pipelines.defs.jobs import jobs
from revrec_pipelines.defs.posting.assets import journal_postings, post_journals, post_journals_schedule
from revrec_pipelines.defs.posting.resources import build_posting_resources
from revrec_pipelines.defs.resources import build_resources
from revrec_pipelines.defs.revrec.assets import revrec_assets
from revrec_pipelines.defs.revrec.checks import ingest_checks, revrec_checks
from revrec_pipelines.defs.rillet.assets import rillet_objects, rillet_sync_job, rillet_sync_schedule


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_inputs, import_report, rillet_objects, *revrec_assets, closed_periods, close_period_exports, continuous_export, analyst_warehouse, journal_postings],
        asset_checks=[*revrec_checks, *ingest_checks],
        jobs=[*jobs, post_journals, rillet_sync_job, continuous_export_job],
        schedules=[build_import_schedule(), rillet_sync_schedule, continuous_export_schedule, post_journals_schedule],
        sensors=[new_file_sensor, period_closed_sensor],
        resources={**build_resources(), **build_posting_resources()},
        executor=dg.in_process_executor,
    )


defs = build_definitions()
