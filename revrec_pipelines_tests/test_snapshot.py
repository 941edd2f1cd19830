"""The analysts' copy of the warehouse (lib/snapshot.py): every row of every table and view, including what was
committed since the last checkpoint; an open analyst session never blocks the next copy; a copy that does not
match the warehouse never replaces the previous one."""

import shutil

import duckdb
import pytest

from revrec_pipelines.lib import close, engine, importer, snapshot, sources, warehouse
from revrec_pipelines.lib.generator import generate, generate_modifications

HOME = "USD"


def _relations(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND NOT temporary "
        "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND NOT internal "
        "AND NOT temporary ORDER BY 1"
    ).fetchall()]
    return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}


@pytest.fixture
def ledger(tmp_path):
    generate(tmp_path / "base", lines=60, seed=21, months=4)
    generate_modifications(tmp_path / "base", tmp_path / "mods", fraction=0.3, seed=22)
    con = warehouse.connect(tmp_path / "w.duckdb")
    assert not importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "base")).rejected
    engine.compute(con, HOME)
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    yield con, tmp_path
    con.close()


def test_the_copy_holds_every_row_including_what_was_committed_since_the_last_checkpoint(ledger):
    con, tmp_path = ledger
    con.execute("CHECKPOINT")
    # a batch committed after the checkpoint stays in the write-ahead log until the next one
    assert not importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "mods")).rejected
    engine.compute(con, HOME)
    assert (tmp_path / "w.duckdb.wal").exists()
    target = snapshot.write_snapshot(con, snapshot.snapshot_path(tmp_path / "w.duckdb"))
    assert target == tmp_path / "w-analyst.duckdb"
    copy = duckdb.connect(str(target), read_only=True)
    try:
        live = _relations(con)
        assert {"line_periods", "unearned_revenue_rollforward", "raw_sales_orders", "closed_periods"} <= live.keys()
        assert _relations(copy) == live  # the views and the macros they use work in the copy too
        assert copy.execute("SELECT fmt_money(-12345)").fetchall() == [("-123.45",)]
    finally:
        copy.close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("w-analyst")) == ["w-analyst.duckdb"]


def test_an_open_analyst_session_keeps_its_copy_and_does_not_block_the_next(ledger):
    con, tmp_path = ledger
    target = snapshot.write_snapshot(con, snapshot.snapshot_path(tmp_path / "w.duckdb"))
    analyst = duckdb.connect(str(target), read_only=True)
    try:
        before = analyst.execute("SELECT count(*) FROM raw_sales_orders").fetchall()
        assert not importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "mods")).rejected
        engine.compute(con, HOME)
        snapshot.write_snapshot(con, target)
        assert analyst.execute("SELECT count(*) FROM raw_sales_orders").fetchall() == before
    finally:
        analyst.close()
    fresh = duckdb.connect(str(target), read_only=True)
    try:
        assert fresh.execute("SELECT count(*) FROM raw_sales_orders").fetchall() != before
        assert _relations(fresh) == _relations(con)
    finally:
        fresh.close()


def test_a_copy_that_does_not_match_the_warehouse_never_replaces_the_previous_one(ledger, monkeypatch):
    con, tmp_path = ledger
    target = snapshot.write_snapshot(con, snapshot.snapshot_path(tmp_path / "w.duckdb"))
    stale = tmp_path / "stale.duckdb"
    shutil.copyfile(target, stale)
    previous = target.read_bytes()
    assert not importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "mods")).rejected
    engine.compute(con, HOME)
    # the disk hands back an older file than the warehouse is now (a fault below the copy)
    real_copyfile = shutil.copyfile
    monkeypatch.setattr(shutil, "copyfile", lambda _src, dst, **_kw: real_copyfile(stale, dst))
    with pytest.raises(snapshot.SnapshotError) as excinfo:
        snapshot.write_snapshot(con, target)
    message = str(excinfo.value)
    assert "does not match the warehouse" in message and "raw_sales_orders" in message
    assert "the previous copy" in message and "Run the analyst_warehouse asset again" in message
    assert target.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("w-analyst")) == ["w-analyst.duckdb"]
