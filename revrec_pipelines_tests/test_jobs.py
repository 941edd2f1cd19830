"""The Dagster layer end to end: jobs run the worked example through import, close and exports; a refused
close fails the run and changes nothing; the sensors and the schedule behave."""

import csv
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from revrec_pipelines.defs.ingest.schedules import import_cron
from revrec_pipelines.lib.settings import Settings, SettingsError

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "worked-example"


@pytest.fixture
def env(tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("REVREC_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("REVREC_SOURCE", f"file://{inbox}")
    monkeypatch.setenv("REVREC_EXPORT_DEST", f"file://{tmp_path / 'exports'}")
    return tmp_path


def _defs():
    from revrec_pipelines.definitions import build_definitions

    return build_definitions()


def _run(defs, instance, job, config=None, tags=None):
    return defs.resolve_job_def(job).execute_in_process(
        run_config=config or {}, instance=instance, raise_on_error=False, tags=tags or {}
    )


def _close_config(period):
    return {"ops": {"closed_periods": {"config": {"period": str(period), "closed_by": "test"}}}}


def _outputs_config(period):
    return {
        "ops": {
            "close_period_exports": {"config": {"period": str(period)}},
            "journal_postings": {"config": {"period": str(period)}},
        }
    }


def _snapshot(path: Path) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_name <> 'close_audit'"
        ).fetchall()]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in sorted(tables)}
    finally:
        con.close()


def test_worked_example_through_the_dagster_jobs(env):
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    ops = json.loads((EXAMPLE / "ops.json").read_text())["ops"]
    for op, arg in ops:
        if op == "import":
            shutil.copytree(EXAMPLE / arg, env / "inbox" / arg)
            assert _run(defs, instance, "import_files").success
        else:
            assert _run(defs, instance, "close_period", _close_config(arg)).success
            assert _run(defs, instance, "close_outputs", _outputs_config(arg)).success
    for expected in sorted((EXAMPLE / "expected").iterdir()):
        assert (env / "exports" / expected.name).read_bytes() == expected.read_bytes(), expected.name
    # analysts read a copy that the runs refresh, so an open analyst session never blocks a run
    snap = duckdb.connect(str(env / "w-analyst.duckdb"), read_only=True)
    try:
        assert snap.execute("SELECT max(period) FROM closed_periods").fetchall()[0][0] == 202504
        assert snap.execute("SELECT count(*) FROM unearned_revenue_rollforward").fetchall()[0][0] > 0
        # while an analyst holds the copy open, the live warehouse can still be written
        assert _run(defs, instance, "compute_revrec").success
    finally:
        snap.close()
    # the control file of every close has the period and a UTC timestamp
    control = (env / "exports" / "closedperiodexport-control-202504.csv").read_text().splitlines()
    assert control[0] == "Closed_Period,Export_Timestamp"
    assert control[1].startswith("202504,") and control[1].endswith("Z")


def test_refused_close_fails_the_run_with_the_reason_and_changes_nothing(env):
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    shutil.copytree(EXAMPLE / "batch1", env / "inbox" / "batch1")
    assert _run(defs, instance, "import_files").success
    assert _run(defs, instance, "close_period", _close_config(202501)).success
    before = _snapshot(env / "w.duckdb")
    result = _run(defs, instance, "close_period", _close_config(202503))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "first open period is 202502" in failure.step_failure_data.user_failure_data.description
    after = _snapshot(env / "w.duckdb")
    assert before.keys() == after.keys()
    changed = [t for t in before if before[t] != after[t]]
    assert changed == [], f"a refused close changed {changed}"


def test_period_closed_sensor_requests_one_outputs_run_per_close(env):
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    shutil.copytree(EXAMPLE / "batch1", env / "inbox" / "batch1")
    assert _run(defs, instance, "import_files").success
    assert _run(defs, instance, "close_period", _close_config(202501)).success
    sensor = defs.resolve_sensor_def("period_closed_sensor")
    ctx = dg.build_sensor_context(instance=instance, definitions=defs)
    result = sensor.evaluate_tick(ctx)
    assert [r.run_key for r in result.run_requests] == ["close-202501-1"]
    assert result.run_requests[0].run_config == _outputs_config(202501)
    # the next tick, with the advanced cursor, has nothing new
    ctx2 = dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
    assert sensor.evaluate_tick(ctx2).run_requests == []
    # a close run by `revrec close` (which writes its outputs itself) is not followed by a sensor run
    assert _run(defs, instance, "close_period", _close_config(202502), tags={"revrec/close_outputs": "inline"}).success
    ctx3 = dg.build_sensor_context(instance=instance, definitions=defs, cursor=result.cursor)
    assert sensor.evaluate_tick(ctx3).run_requests == []


def test_new_file_sensor_triggers_once_per_stable_file_identity(env):
    defs = _defs()
    sensor = defs.resolve_sensor_def("new_file_sensor")
    instance = dg.DagsterInstance.ephemeral()
    inbox = env / "inbox"
    (inbox / "customers.csv").write_text("Customer_Id,Customer_Name\nC1,Acme\n")

    def tick(cursor):
        return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs))

    first = tick(None)
    assert first.run_requests == []  # seen once: waits one tick in case it is still being written
    second = tick(first.cursor)
    assert len(second.run_requests) == 1
    key = second.run_requests[0].run_key
    third = tick(second.cursor)
    assert third.run_requests == []  # the same file never triggers a second run
    (inbox / "customers.csv").write_text("Customer_Id,Customer_Name\nC1,Acme\nC2,Globex\n")
    fourth = tick(third.cursor)
    assert fourth.run_requests == []
    fifth = tick(fourth.cursor)
    assert len(fifth.run_requests) == 1 and fifth.run_requests[0].run_key != key


def test_import_schedule_settings():
    assert import_cron("daily", "00:00") == "0 0 * * *"
    assert import_cron("weekly", "06:30") == "30 6 * * 1"
    assert import_cron("monthly", "23:05") == "5 23 1 * *"
    with pytest.raises(SettingsError):
        import_cron("daily", "25:00")
    s = Settings.from_env({"REVREC_IMPORT_SCHEDULE": "weekly", "REVREC_IMPORT_TIME": "06:30", "REVREC_IMPORT_TIMEZONE": "Europe/Paris"})
    from revrec_pipelines.defs.ingest.schedules import build_import_schedule

    schedule = build_import_schedule(s)
    assert schedule.cron_schedule == "30 6 * * 1" and schedule.execution_timezone == "Europe/Paris"
    with pytest.raises(SettingsError):
        Settings.from_env({"REVREC_POSTING": "sap"})


def test_rillet_sync_job_maps_rillet_contracts_into_the_revenue_tables(env, monkeypatch):
    from revrec_pipelines_tests.emulators.rillet_emulator import RilletEmulator, sample_seed

    with RilletEmulator(api_key="sync-key") as emu:
        emu.seed(**sample_seed())
        monkeypatch.setenv("RILLET_BASE_URL", emu.base_url)
        monkeypatch.setenv("RILLET_API_KEY", "sync-key")
        defs = _defs()
        instance = dg.DagsterInstance.ephemeral()
        result = _run(defs, instance, "rillet_sync", {"ops": {"rillet_objects": {"config": {"full": False}}}})
        assert result.success
        assert all("sync-key" not in str(e) for e in result.all_events)
    con = duckdb.connect(str(env / "w.duckdb"), read_only=True)
    try:
        contracts = con.execute("SELECT count(*) FROM raw_sales_orders WHERE _source = 'rillet'").fetchall()[0][0]
        assert contracts > 0
        assert con.execute("SELECT count(*) FROM line_periods").fetchall()[0][0] > 0
    finally:
        con.close()


def test_continuous_export_job_writes_a_version_then_nothing(env):
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    shutil.copytree(EXAMPLE / "batch1", env / "inbox" / "batch1")
    assert _run(defs, instance, "import_files").success
    first = _run(defs, instance, "continuous_export_job")
    assert first.success
    written = sorted(p.name for p in (env / "exports").glob("continuousexport-*"))
    assert "continuousexport-control-000001.csv" in written and "continuousexport-revenue-000001.csv" in written
    # the metadata's rows per type are the files' records (csv reads quoted line breaks as one record)
    metadata = next(e for e in first.all_events if e.is_step_materialization).materialization.metadata
    rows_by_type = metadata["rows_by_type"].value
    for name in written:
        export_type = name[len("continuousexport-"):].rsplit("-", 1)[0]
        if export_type != "control":
            with open(env / "exports" / name, newline="", encoding="utf-8") as f:
                assert rows_by_type[export_type] == sum(1 for _ in csv.DictReader(f)), name
    assert _run(defs, instance, "continuous_export_job").success
    assert sorted(p.name for p in (env / "exports").glob("continuousexport-*")) == written


def test_a_rejected_file_fails_the_import_run_at_its_end_and_the_check_lists_its_problems(env):
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    shutil.copytree(EXAMPLE / "batch1", env / "inbox" / "batch1")
    (env / "inbox" / "usage_extra.csv").write_text("Sales_Order_Item_Id,Usage_Date,Amount\nSO-1-3,2025-03-10,12.345\n")
    result = _run(defs, instance, "import_files")
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "import_report"
    text = failure.step_failure_data.user_failure_data.description
    assert "usage_extra.csv" in text and "row 2" in text and "Amount" in text and "'12.345'" in text
    # the good files were applied and the revenue tables recomputed from them
    mats = {e.asset_key.to_user_string() for e in result.all_events if e.is_step_materialization}
    assert {"raw_inputs", "order_lines", "line_periods"} <= mats
    check = next(
        e.event_specific_data for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == "no_rejected_files"
    )
    assert not check.passed and "usage_extra.csv" in check.description
