"""The one Definitions object loads and wires what we expect (asset keys, groups, checks, jobs, sensors)."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

from revrec_pipelines.definitions import build_definitions
from revrec_pipelines.lib.engine import STEPS

ROOT = Path(__file__).resolve().parents[1]


def test_every_engine_table_is_an_asset_in_the_revrec_group():
    defs = build_definitions()
    graph = defs.resolve_asset_graph()
    for _step, table in STEPS:
        key = dg.AssetKey(table)
        assert graph.has(key), f"{table} is not an asset"
        assert graph.get(key).group_name == "revrec"
    assert graph.get(dg.AssetKey("raw_inputs")).group_name == "ingest"
    assert graph.get(dg.AssetKey("closed_periods")).group_name == "close"
    assert graph.get(dg.AssetKey("close_period_exports")).group_name == "exports"


def test_every_asset_has_a_description_and_the_warehouse_pool():
    defs = build_definitions()
    for node in defs.resolve_asset_graph().asset_nodes:
        assert node.description and len(node.description) > 40, f"{node.key} lacks a useful description"
        # DuckDB has one writer: every asset that opens the warehouse shares the pool limited in dagster.yaml
        assert node.pools == {"revrec_warehouse"}, f"{node.key} is not in the warehouse pool"


def test_invariant_checks_are_wired():
    defs = build_definitions()
    check_keys = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for expected in [
        ("line_periods", "rollforward_identity"),
        ("line_periods", "revenue_equals_allocation"),
        ("line_periods", "closed_periods_unchanged"),
        ("journal_lines", "journals_balanced"),
        ("order_lines", "allocation_sums_to_bookings"),
        ("held_lines", "no_held_lines"),
        ("raw_inputs", "no_rejected_files"),
    ]:
        assert expected in check_keys


def test_jobs_sensors_and_schedules():
    defs = build_definitions()
    names = {j.name for j in defs.resolve_all_job_defs()}
    assert {"import_files", "compute_revrec", "close_period", "close_outputs", "reopen_period"} <= names
    assert defs.resolve_schedule_def("import_schedule").cron_schedule == "0 0 * * *"
    assert defs.resolve_schedule_def("import_schedule").execution_timezone == "America/New_York"
    continuous = defs.resolve_schedule_def("continuous_export_schedule")
    assert (continuous.cron_schedule, continuous.execution_timezone) == ("0 23 * * *", "UTC")
    assert {"continuous_export_job", "post_journals", "rillet_sync"} <= names
    assert defs.resolve_sensor_def("new_file_sensor")
    assert defs.resolve_sensor_def("period_closed_sensor")


def test_dagster_definitions_validate_passes():
    cli = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(cli), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
