"""Jobs (SPEC §7). Asset jobs materialize what a person would ask for, in dependency order."""


import dagster as dg

from revrec_pipelines.defs.close.assets import reopen_period_job

# the analysts' read-only copy is refreshed by every job that recomputes the revenue tables
REVREC = dg.AssetSelection.groups("revrec") | dg.AssetSelection.assets("analyst_warehouse")

import_job = dg.define_asset_job(
    "import_files",
    # Rillet objects sync in the same run when RILLET_API_KEY is set (a no-op otherwise)
    selection=dg.AssetSelection.assets("raw_inputs", "rillet_objects", "import_report") | REVREC,
    description="Import every new input file from REVREC_SOURCE (and Rillet objects when RILLET_API_KEY is set), then recompute the revenue tables.",
    tags={"revrec/job": "import"},
)

compute_job = dg.define_asset_job(
    "compute_revrec",
    selection=REVREC,
    description="Recompute every revenue table (allocation, schedules, rollforward, backlog, journals) from the warehouse.",
    tags={"revrec/job": "compute"},
)

close_period_job = dg.define_asset_job(
    "close_period",
    selection=REVREC | dg.AssetSelection.assets("closed_periods"),
    description=(
        "Close a period (config: ops.closed_periods.config.period = YYYYMM): recompute the revenue tables, run the "
        "blocking checks and freeze the period. Exports and posting follow in a close_outputs run."
    ),
    tags={"revrec/job": "close"},
)

close_outputs_job = dg.define_asset_job(
    "close_outputs",
    selection=dg.AssetSelection.assets("close_period_exports") | dg.AssetSelection.groups("posting"),
    description="Write the close-period exports (and post journals when posting is on) for a closed period.",
    tags={"revrec/job": "close_outputs"},
)

jobs = [import_job, compute_job, close_period_job, close_outputs_job, reopen_period_job]
