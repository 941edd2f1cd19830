"""The import and export behaviour proven for the local folder holds for SFTP (a real sshd or asyncssh server)
and S3 (moto's HTTP server): the worked example imported from the server gives the same warehouse as from a
folder, a second run imports nothing, a bad file is rejected with nothing applied, the close-period exports
written to the server are byte for byte the expected files, and the new-file sensor sees files there."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from revrec_pipelines.lib import close, exports, importer, sources, warehouse

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "worked-example"


def _raw_tables(con) -> dict[str, list]:
    tables = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'raw_%' AND table_type = 'BASE TABLE'"
    ).fetchall()]
    cols = "* EXCLUDE (_batch_id, _superseded_by_batch, _loaded_at)"
    return {t: con.execute(f"SELECT {cols} FROM {t} ORDER BY ALL").fetchall() for t in sorted(tables)}


def _worked_example(con, source, dest) -> None:
    ops = json.loads((EXAMPLE / "ops.json").read_text())["ops"]
    for op, arg in ops:
        if op == "import":
            report = importer.import_from_source(con, source(arg))
            assert not report.rejected, report.failure_message()
            assert report.count("applied") == len(list((EXAMPLE / arg).iterdir()))
        else:
            close.close_period(con, arg, home_currency="USD", actor="test")
            exports.write_close_exports(con, arg, dest)


def _check_remote(tmp_path, source, dest, read_export, upload_bad):
    con = warehouse.connect(tmp_path / "remote.duckdb")
    _worked_example(con, source, dest)
    for expected in sorted((EXAMPLE / "expected").iterdir()):
        assert read_export(expected.name) == expected.read_bytes(), expected.name
    # the same inputs from a local folder give the same warehouse
    local = warehouse.connect(tmp_path / "local.duckdb")
    for batch in ("batch1", "batch2"):
        importer.import_from_source(local, sources.LocalFolderSource(EXAMPLE / batch))
    assert _raw_tables(con) == _raw_tables(local)
    # incremental: nothing is imported twice
    again = importer.import_from_source(con, source("batch1"))
    assert again.count("skipped") == len(again.outcomes) > 0
    # a bad file on the server is rejected whole, nothing applied
    before = _raw_tables(con)
    upload_bad()
    report = importer.import_from_source(con, source("batch1"))
    assert [o.path for o in report.rejected] == ["usage_bad.csv"]
    assert _raw_tables(con) == before
    con.close()
    local.close()


BAD_USAGE = b"Sales_Order_Item_Id,Usage_Date,Amount\nSO-1-3,2025-03-10,12.345\n"


def test_sftp_import_and_export_match_the_local_folder(tmp_path, sftp_server):
    for batch in ("batch1", "batch2"):
        shutil.copytree(EXAMPLE / batch, sftp_server.root / "inbox" / batch)
    env = sftp_server.env()

    def source(batch):
        return sources.open_source(sftp_server.uri(f"inbox/{batch}"), env)

    dest = sources.open_destination(sftp_server.uri("exports"), env)
    _check_remote(
        tmp_path, source, dest,
        read_export=lambda name: (sftp_server.root / "exports" / name).read_bytes(),
        upload_bad=lambda: (sftp_server.root / "inbox" / "batch1" / "usage_bad.csv").write_bytes(BAD_USAGE),
    )
    leftovers = [p.name for p in (sftp_server.root / "exports").iterdir() if not p.name.startswith("closedperiodexport-")]
    assert leftovers == []  # atomic writes leave no temporary files


def test_s3_import_and_export_match_the_local_folder(tmp_path, s3_server):
    client = s3_server.create_bucket("revrec")
    for batch in ("batch1", "batch2"):
        for f in (EXAMPLE / batch).iterdir():
            client.put_object(Bucket="revrec", Key=f"inbox/{batch}/{f.name}", Body=f.read_bytes())
    env = s3_server.env()

    def source(batch):
        return sources.open_source(f"s3://revrec/inbox/{batch}", env)

    dest = sources.open_destination("s3://revrec/exports", env)
    _check_remote(
        tmp_path, source, dest,
        read_export=lambda name: client.get_object(Bucket="revrec", Key=f"exports/{name}")["Body"].read(),
        upload_bad=lambda: client.put_object(Bucket="revrec", Key="inbox/batch1/usage_bad.csv", Body=BAD_USAGE),
    )


def test_new_file_sensor_and_import_job_on_s3(tmp_path, s3_server, monkeypatch):
    client = s3_server.create_bucket("drop")
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REVREC_SOURCE", "s3://drop/in/")
    monkeypatch.setenv("REVREC_WAREHOUSE", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("REVREC_EXPORT_DEST", "s3://drop/out/")
    from revrec_pipelines.definitions import build_definitions

    defs = build_definitions()
    instance = dg.DagsterInstance.ephemeral()
    sensor = defs.resolve_sensor_def("new_file_sensor")
    for f in (EXAMPLE / "batch1").iterdir():
        client.put_object(Bucket="drop", Key=f"in/{f.name}", Body=f.read_bytes())
    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    second = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=first.cursor))
    assert first.run_requests == [] and len(second.run_requests) == 1
    result = defs.resolve_job_def("import_files").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    result = defs.resolve_job_def("continuous_export_job").execute_in_process(instance=instance, raise_on_error=False)
    assert result.success
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="drop", Prefix="out/")["Contents"]]
    assert "out/continuousexport-control-000001.csv" in keys
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM import_ledger WHERE source = 's3://drop/in/'").fetchall()[0][0] == 8
    finally:
        con.close()


@pytest.mark.parametrize("fault", ["wrong password", "unknown host key"])
def test_sftp_connection_problems_fail_the_import_run_with_a_clear_reason(tmp_path, sftp_password_server, monkeypatch, fault):
    shutil.copytree(EXAMPLE / "batch1", sftp_password_server.root / "inbox")
    env = sftp_password_server.env()
    if fault == "wrong password":
        env["REVREC_SFTP_PASSWORD"] = "not-the-password"
    else:
        other = tmp_path / "known_hosts"
        other.write_text("")
        env["REVREC_SFTP_KNOWN_HOSTS"] = str(other)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("REVREC_SOURCE", sftp_password_server.uri("inbox"))
    monkeypatch.setenv("REVREC_WAREHOUSE", str(tmp_path / "w.duckdb"))
    from revrec_pipelines.definitions import build_definitions

    defs = build_definitions()
    result = defs.resolve_job_def("import_files").execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = failure.step_failure_data.user_failure_data.description
    assert ("authentication" in text.lower()) if fault == "wrong password" else ("not in the known-hosts file" in text)
    assert "not-the-password" not in str(result.all_events)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw_sales_orders").fetchall()[0][0] == 0
    finally:
        con.close()


def _other_file_system(near: Path) -> Path | None:
    """A writable folder on another file system than `near` (tmpfs at /dev/shm where there is one)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shm.stat().st_dev != near.stat().st_dev:
        try:
            return Path(tempfile.mkdtemp(dir=shm))
        except OSError:
            return None
    return None


def test_local_destination_publishes_a_file_linked_or_copied_and_replaces_the_earlier_one(tmp_path):
    """A file written beside the destination is published by a link (no copy of a 200 MB export), one written
    on another file system by a copy; either way the published file outlives the writer's copy, keeps its
    bytes, replaces an earlier file of that name, and no temporary file is left in the folder."""
    root = tmp_path / "exports"
    destination = sources.LocalFolderDestination(root)
    first = tmp_path / "first.csv"
    first.write_bytes(b"a,b\n1,2\n")
    destination.write_file("revenue.csv", first)
    assert (root / "revenue.csv").stat().st_ino == first.stat().st_ino  # linked, not copied
    first.unlink()
    assert (root / "revenue.csv").read_bytes() == b"a,b\n1,2\n"
    other = _other_file_system(tmp_path)
    if other is None:
        if os.environ.get("REVREC_CI") == "1":
            pytest.fail("no second file system (/dev/shm) to prove the copy path on")
        pytest.skip("no second file system (/dev/shm) here")
    try:
        second = other / "second.csv"
        second.write_bytes(b"a,b\n3,4\n")
        destination.write_file("revenue.csv", second)
        second.unlink()
    finally:
        shutil.rmtree(other, ignore_errors=True)
    assert (root / "revenue.csv").read_bytes() == b"a,b\n3,4\n"
    assert sorted(p.name for p in root.iterdir()) == ["revenue.csv"]

