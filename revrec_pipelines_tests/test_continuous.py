"""Continuous export (SPEC §6): replaying every change file in Version order rebuilds the current tables
exactly, type by type, after imports of new lines, modifications, cancellations, late invoices and late
rates, with closes and a reopen in between; no change writes nothing; a held line goes out exactly once
after its rate arrives; a crash between writing files and recording state loses and repeats nothing."""

import csv
import os
import shutil
import stat
from collections import defaultdict
from pathlib import Path

import pytest

from revrec_pipelines.lib import close, continuous, engine, exports, importer, sources, sql, warehouse
from revrec_pipelines.lib.generator import generate, generate_modifications

HOME = "USD"


def _import(con, folder: Path) -> None:
    report = importer.import_from_source(con, sources.LocalFolderSource(folder))
    assert not report.rejected, report.failure_message()
    engine.compute(con, HOME)


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def replay(export_dir: Path) -> dict[str, dict[str, list[tuple]]]:
    """What a consumer holds: per type, per line, the rows of the latest Version that carried the line."""
    state: dict[str, dict[str, list[tuple]]] = defaultdict(dict)
    files = sorted(export_dir.glob("continuousexport-*.csv"), key=lambda p: (int(p.stem.rsplit("-", 1)[1]), p.name))
    versions = [int(p.stem.rsplit("-", 1)[1]) for p in files]
    assert versions == sorted(versions)
    for path in files:
        export_type = path.stem[len("continuousexport-"):].rsplit("-", 1)[0]
        if export_type == "control":
            continue
        by_item: dict[str, list[tuple]] = defaultdict(list)
        for row in _read(path):
            version = row.pop("Version")
            assert version == str(int(path.stem.rsplit("-", 1)[1]))
            item = row["Sales_Order_Item_Id"]
            tombstone = all(v == "" for k, v in row.items() if k not in ("Sales_Order_Id", "Sales_Order_Item_Id"))
            by_item[item]  # a tombstone leaves the line with no rows
            if not tombstone:
                by_item[item].append(tuple(row.values()))
        for item, rows in by_item.items():
            state[export_type][item] = rows
    return {t: {i: r for i, r in items.items() if r} for t, items in state.items()}


def current_tables(con) -> dict[str, dict[str, list[tuple]]]:
    """Every export type's rows now, for every line (the non-incremental truth the replay must equal)."""
    con.execute("CREATE OR REPLACE TEMP TABLE ce_candidates AS SELECT Sales_Order_Item_Id FROM order_lines")
    srcs = continuous._sources(con)
    out: dict[str, dict[str, list[tuple]]] = {}
    for export_type in continuous.EXPORT_TYPES:
        query = exports.file_query(exports.export_query(export_type, srcs[export_type]))
        cur = con.execute(query)
        cols = [d[0] for d in cur.description]
        rows: dict[str, list[tuple]] = defaultdict(list)
        for r in cur.fetchall():
            values = tuple("" if v is None else str(v) for v in r)
            rows[values[cols.index("Sales_Order_Item_Id")]].append(values)
        out[export_type] = dict(rows)
    return out


def assert_replay_equals_current(con, export_dir: Path) -> None:
    replayed = replay(export_dir)
    current = current_tables(con)
    for export_type in continuous.EXPORT_TYPES:
        got = replayed.get(export_type, {})
        want = current[export_type]
        assert got.keys() == want.keys(), f"{export_type}: lines differ: {sorted(set(got) ^ set(want))[:5]}"
        for item in want:
            assert sorted(got[item]) == sorted(want[item]), f"{export_type} {item} differs"


def _export(con, out: Path, **kw):
    return continuous.run_continuous_export(con, sources.LocalFolderDestination(out), **kw)


@pytest.mark.parametrize("seed", [3, 11, 29])
def test_replaying_every_version_rebuilds_the_current_tables(tmp_path, seed):
    base, mods, out = tmp_path / "base", tmp_path / "mods", tmp_path / "out"
    generate(base, lines=120, seed=seed, months=6)
    generate_modifications(base, mods, fraction=0.2, seed=seed + 1)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    first = _export(con, out)
    assert first.version == 1
    assert_replay_equals_current(con, out)
    # orders rows carry the first open period: before any close, the ledger's first period
    ledger_first = con.execute("SELECT min(Actg_Period) FROM line_periods").fetchall()[0][0]
    assert {r["Actg_Period"] for r in _read(out / "continuousexport-orders-000001.csv")} == {str(ledger_first)}
    # journals go out only once a period is closed
    assert not list(out.glob("continuousexport-journals-*.csv"))
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    close.close_period(con, 202502, home_currency=HOME, actor="t")
    assert _export(con, out).version == 2
    assert list(out.glob("continuousexport-journals-000002.csv"))
    assert {r["Actg_Period"] for r in _read(out / "continuousexport-orders-000002.csv")} == {"202503"}
    assert_replay_equals_current(con, out)
    _import(con, mods)  # modifications, cancellations, late invoices, new lines, moved rates
    assert _export(con, out).version == 3
    assert_replay_equals_current(con, out)
    assert_one_state_row_per_item_and_type(con)
    close.reopen_period(con, 202502, home_currency=HOME, actor="t")
    close.close_period(con, 202502, home_currency=HOME, actor="t")
    close.close_period(con, 202503, home_currency=HOME, actor="t")
    assert _export(con, out).version == 4
    assert_replay_equals_current(con, out)
    assert_one_state_row_per_item_and_type(con)
    assert_journal_checksums_match_the_frozen_lines(con)
    control = _read(out / "continuousexport-control-000004.csv")
    assert control[0]["Closed_Period"] == "202503" and control[0]["Version"] == "4"
    assert control[0]["Export_Timestamp"].endswith("Z") and "T" in control[0]["Export_Timestamp"]
    con.close()


def test_several_imports_between_runs_go_out_in_one_file_per_type_and_no_change_writes_nothing(tmp_path):
    base, mods, out = tmp_path / "base", tmp_path / "mods", tmp_path / "out"
    generate(base, lines=60, seed=5, months=4)
    generate_modifications(base, mods, fraction=0.3, seed=6)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    _export(con, out)
    # two imports in a day: the modification files arrive one by one
    from revrec_pipelines.lib.filetypes import APPLY_ORDER, type_of_name

    files = sorted(mods.iterdir(), key=lambda p: APPLY_ORDER.index(type_of_name(p.name)))
    for i, chunk in enumerate((files[:2], files[2:])):
        drop = tmp_path / f"drop{i}"
        drop.mkdir()
        for f in chunk:
            shutil.copy(f, drop / f.name)
        _import(con, drop)
    result = _export(con, out)
    assert result.version == 2
    assert sorted(p.name for p in out.glob("continuousexport-*-000002.csv")) == sorted(result.files)
    assert_replay_equals_current(con, out)
    before = sorted(p.name for p in out.iterdir())
    again = _export(con, out)
    assert again.version is None and again.files == []
    # a run leaves none of its temporary tables behind (they would hold memory for the rest of the connection)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary AND table_name LIKE 'ce%'").fetchall() == [(0,)]
    assert sorted(p.name for p in out.iterdir()) == before
    con.close()


def test_a_held_line_goes_out_exactly_once_after_its_rate_arrives(tmp_path):
    base, out = tmp_path / "base", tmp_path / "out"
    generate(base, lines=40, seed=8, months=3)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    customer, product = con.execute("SELECT Customer_Id, Product_Id FROM order_lines WHERE Revenue_Rule = 'ratable_daily' LIMIT 1").fetchall()[0]
    late = tmp_path / "late"
    late.mkdir()
    (late / "sales_orders_chf.csv").write_text(
        "Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,Service_Start_Date,Service_End_Date,Currency\n"
        f"SO-CHF,SO-CHF-1,{customer},{product},2025-02-03,1,1200.00,2025-02-03,2026-02-02,CHF\n"
    )
    _import(con, late)
    assert con.execute("SELECT count(*) FROM held_lines WHERE Sales_Order_Item_Id = 'SO-CHF-1'").fetchall()[0][0] == 1
    _export(con, out)
    assert_replay_equals_current(con, out)

    def mentions(version: int) -> bool:
        return any("SO-CHF-1" in p.read_text() for p in out.glob(f"continuousexport-*-{version:06d}.csv"))

    assert not mentions(1)
    rates = tmp_path / "rates"
    rates.mkdir()
    (rates / "exchange_rates_chf.csv").write_text("From_Currency,To_Currency,Rate_Date,Rate\nCHF,USD,2025-01-01,1.1\n")
    _import(con, rates)
    second = _export(con, out)
    assert second.version == 2 and mentions(2)
    assert_replay_equals_current(con, out)
    assert _export(con, out).version is None
    # an invoice in a currency without a rate holds the line again: its rows vanish behind tombstones
    jpy = tmp_path / "jpy"
    jpy.mkdir()
    (jpy / "invoices_jpy.csv").write_text(
        "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Id,Sales_Order_Item_Id\n"
        "INV-JPY,1,2025-03-01,50000.00,JPY,SO-CHF,SO-CHF-1\n"
    )
    _import(con, jpy)
    third = _export(con, out)
    assert third.version == 3 and third.tombstones >= 1
    tomb = [r for r in _read(out / "continuousexport-revenue-000003.csv") if r["Sales_Order_Item_Id"] == "SO-CHF-1"]
    assert len(tomb) == 1 and tomb[0]["Revenue"] == "" and tomb[0]["Version"] == "3"
    assert_replay_equals_current(con, out)
    (rates / "exchange_rates_jpy.csv").write_text("From_Currency,To_Currency,Rate_Date,Rate\nJPY,CHF,2025-01-01,0.0061\n")
    _import(con, rates)
    assert _export(con, out).version == 4 and mentions(4)
    assert_replay_equals_current(con, out)
    con.close()


def test_a_crash_between_writing_and_recording_repeats_no_version_and_loses_none(tmp_path):
    base, mods, out = tmp_path / "base", tmp_path / "mods", tmp_path / "out"
    generate(base, lines=60, seed=13, months=4)
    generate_modifications(base, mods, fraction=0.3, seed=14)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    assert _export(con, out).version == 1
    _import(con, mods)

    def crash(version: int) -> None:
        raise RuntimeError(f"killed after writing version {version}")

    before = _export_state(con)
    with pytest.raises(RuntimeError, match="version 2"):
        _export(con, out, after_files_written=crash)
    assert con.execute("SELECT max(version) FROM continuous_export_runs").fetchall()[0][0] == 1
    # the run was one transaction: nothing of it stays, not even its reads' temporary tables
    assert _export_state(con) == before
    assert not con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    recovered = _export(con, out)
    assert recovered.version == 2  # the same number again: no gap, no duplicate
    assert con.execute("SELECT list(version ORDER BY version) FROM continuous_export_runs").fetchall()[0][0] == [1, 2]
    assert_replay_equals_current(con, out)
    assert _export(con, out).version is None
    con.close()


def test_the_files_are_on_disk_before_the_run_that_wrote_them_is_recorded(tmp_path, monkeypatch):
    # A power cut right after the run is recorded must not leave the record beside a lost or empty file: each
    # file is flushed before it takes its name, the folder after the renames, and all of it before the commit.
    base, out = tmp_path / "base", tmp_path / "out"
    generate(base, lines=40, seed=5, months=3)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    committed = con.cursor()  # another connection to the warehouse: it sees only what is committed
    flushes: list[tuple[int, bool, list[str], int]] = []
    real_fsync = os.fsync

    def observed_fsync(fd: int) -> None:
        st = os.fstat(fd)
        published = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) if out.exists() else []
        runs = committed.execute("SELECT count(*) FROM continuous_export_runs").fetchall()[0][0]
        flushes.append((st.st_ino, stat.S_ISDIR(st.st_mode), published, runs))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", observed_fsync)
    result = _export(con, out)
    monkeypatch.undo()

    assert result.version == 1 and len(result.files) == 8  # every type but journals (none closed), and control
    for name in result.files:
        own = [f for f in flushes if f[0] == (out / name).stat().st_ino and not f[1]]
        assert own, f"{name} was never flushed"
        assert all(name not in published for _, _, published, _ in own), f"{name} was flushed after publishing"
    folder = [f for f in flushes if f[1] and f[0] == out.stat().st_ino]
    assert folder and folder[-1][2] == sorted(result.files)  # the folder flushed once every file was in place
    assert {runs for *_, runs in flushes} == {0}  # all before the run was committed
    assert committed.execute("SELECT count(*) FROM continuous_export_runs").fetchall()[0][0] == 1
    con.close()


def _export_state(con) -> dict[str, list[tuple]]:
    return {
        table: con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
        for table in ("continuous_export_state", "continuous_export_runs", "continuous_export_watermark")
    }


def assert_one_state_row_per_item_and_type(con) -> None:
    rows, keys = con.execute(
        "SELECT count(*), count(DISTINCT (export_type, Sales_Order_Item_Id)) FROM continuous_export_state"
    ).fetchall()[0]
    assert rows == keys > 0


def _fresh_journal_checksums(con) -> list[tuple]:
    rows = exports.export_query("journals", "frozen_journal_lines")
    return con.execute(
        f"SELECT _s0, _item, sum(CAST(_h AS HUGEINT)) FROM ({rows}) GROUP BY ALL ORDER BY ALL").fetchall()


def assert_journal_checksums_match_the_frozen_lines(con) -> None:
    """The checksums a close writes and a reopen drops are those of the frozen journal lines, period by period."""
    kept = con.execute(
        "SELECT Actg_Period, Sales_Order_Item_Id, content_hash FROM frozen_journal_checksums ORDER BY ALL").fetchall()
    assert kept == _fresh_journal_checksums(con) and kept


def test_a_warehouse_closed_before_the_journal_checksums_gets_them_written_on_connect(tmp_path):
    base = tmp_path / "base"
    generate(base, lines=60, seed=17, months=4)
    path = tmp_path / "w.duckdb"
    con = warehouse.connect(path)
    _import(con, base)
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    close.close_period(con, 202502, home_currency=HOME, actor="t")
    written = con.execute("SELECT * FROM frozen_journal_checksums ORDER BY ALL").fetchall()
    assert {r[0] for r in written} == {202501, 202502}
    con.execute("DELETE FROM frozen_journal_checksums")  # as a warehouse closed before the table existed
    con.execute("UPDATE revrec_schema SET version = 'before'")
    con.close()
    con = warehouse.connect(path)
    assert con.execute("SELECT * FROM frozen_journal_checksums ORDER BY ALL").fetchall() == written
    assert_journal_checksums_match_the_frozen_lines(con)
    con.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("continuousexport-*.csv"))}


def test_fmt_cents_writes_money_exactly_as_fmt_money(tmp_path):
    con = warehouse.connect(tmp_path / "w.duckdb")
    edges = [0, 1, -1, 5, -5, 99, -99, 100, -100, 101, -101, 123456, -123456, 999999999999999999, -999999999999999999,
             1000000000000000000, -1000000000000000000, 2**63 - 1, -(2**63) + 1, 2**126, -(2**126)]
    values = ", ".join(f"({v})" for v in edges)
    for cast in ("BIGINT", "HUGEINT"):
        fits = "" if cast == "HUGEINT" else "WHERE c BETWEEN -9223372036854775807 AND 9223372036854775807"
        differ = con.execute(
            f"SELECT c, fmt_money(c), fmt_cents(c) FROM (SELECT CAST(v AS {cast}) AS c FROM (SELECT CAST(v AS HUGEINT) AS v "
            f"FROM (VALUES {values}, (NULL)) t(v) {fits.replace('c BETWEEN', 'v BETWEEN')})) "
            "WHERE fmt_money(c) IS DISTINCT FROM fmt_cents(c)"
        ).fetchall()
        assert differ == []
    assert con.execute(
        "SELECT count(*) FROM range(-300000, 300000) t(c) WHERE fmt_money(c) <> fmt_cents(c)"
    ).fetchall()[0][0] == 0
    con.close()


def test_the_first_run_writes_the_same_files_as_a_run_that_compares_with_a_state(tmp_path):
    """The first run writes every line's rows without picking them; a run that has a state to compare
    with picks the changed lines: on the same warehouse both write the same bytes."""
    base = tmp_path / "base"
    generate(base, lines=80, seed=17, months=5)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    close.close_period(con, 202502, home_currency=HOME, actor="t")
    con.close()
    shutil.copy(tmp_path / "w.duckdb", tmp_path / "w2.duckdb")
    shutil.copy(tmp_path / "w.duckdb", tmp_path / "w3.duckdb")
    fast = warehouse.connect(tmp_path / "w.duckdb")
    _export(fast, tmp_path / "fast", export_timestamp="2026-01-01T00:00:00Z")
    fast.close()
    general = warehouse.connect(tmp_path / "w2.duckdb")
    # a state row of a line long gone (its tombstone sent): the run compares, and writes nothing for it
    general.execute("INSERT INTO continuous_export_state VALUES ('revenue', 'GONE-1', 'GONE', 1, 0, true)")
    _export(general, tmp_path / "general", export_timestamp="2026-01-01T00:00:00Z")
    general.close()
    assert _files(tmp_path / "fast") == _files(tmp_path / "general")
    assert any(name.startswith("continuousexport-journals-") for name in _files(tmp_path / "fast"))
    # the same first run, each large file written in slices of periods: the same bytes
    sliced = warehouse.connect(tmp_path / "w3.duckdb")
    messages: list[str] = []
    result = _export(sliced, tmp_path / "sliced", export_timestamp="2026-01-01T00:00:00Z", slice_rows=25,
                     progress=messages.append)
    sliced.close()
    # the run says what it writes, file by file
    rollforward = result.rows_by_type["unearned_revenue_rollforward"]
    assert rollforward == len(_read(tmp_path / "sliced" / "continuousexport-unearned_revenue_rollforward-000001.csv"))
    assert (f"continuousexport-unearned_revenue_rollforward-000001.csv: {rollforward:,} rows of "
            f"{result.items_by_type['unearned_revenue_rollforward']:,} line(s) written") in messages
    assert f"unearned_revenue_rollforward: writing {result.slices_by_type['unearned_revenue_rollforward']} slices of periods" in messages
    assert result.slices_by_type["unearned_revenue_rollforward"] > 2
    assert result.slices_by_type["journals"] == 2  # two closed periods: journals go out for those only
    assert result.slices_by_type["invoices"] > 2
    assert _files(tmp_path / "sliced") == _files(tmp_path / "fast")


@pytest.mark.parametrize("seed", [21, 37])
def test_a_run_over_the_changed_inputs_writes_what_a_run_over_every_line_writes(tmp_path, seed):
    """The candidates found from the batches (lines moved between orders or invoices, rates moved, …)
    miss nothing: a run that rechecks every line against the same state writes the same bytes."""
    base, mods = tmp_path / "base", tmp_path / "mods"
    generate(base, lines=150, seed=seed, months=6)
    generate_modifications(base, mods, fraction=0.3, seed=seed + 1)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    customer, product = con.execute(
        "SELECT Customer_Id, Product_Id FROM order_lines WHERE Revenue_Rule = 'ratable_daily' LIMIT 1").fetchall()[0]
    # two lines no batch below names: one billed in GBP, one whose invoice then moves to another line
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "sales_orders_x.csv").write_text(
        "Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,Service_Start_Date,Service_End_Date,Currency\n"
        f"SO-X,SO-X-1,{customer},{product},2025-01-10,1,1200.00,2025-01-10,2026-01-09,EUR\n"
        f"SO-Y,SO-Y-1,{customer},{product},2025-01-12,1,2400.00,2025-01-12,2026-01-11,EUR\n"
        f"SO-Z,SO-Z-1,{customer},{product},2025-01-12,1,600.00,2025-01-12,2026-01-11,EUR\n"
    )
    (extra / "invoices_x.csv").write_text(
        "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Id,Sales_Order_Item_Id\n"
        "INV-X,1,2025-03-15,1000.00,GBP,SO-X,SO-X-1\nINV-M,1,2025-02-20,500.00,EUR,SO-Y,SO-Y-1\n"
    )
    # and an invoice-as-contract line (its own line INV-C-1), which stops being a line when its invoice is re-pointed
    (extra / "invoices_y.csv").write_text(
        "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Customer_Id,Product_Id\n"
        f"INV-C,1,2025-02-25,300.00,EUR,{customer},{product}\n"
    )
    _import(con, extra)
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    _export(con, tmp_path / "first")
    _import(con, mods)
    # an earlier rate moves too (every conversion on or after it may change), and an invoice moves to another line
    early = tmp_path / "early"
    early.mkdir()
    (early / "exchange_rates_early.csv").write_text(
        "From_Currency,To_Currency,Rate_Date,Rate\nEUR,USD,2025-02-01,1.2\nGBP,EUR,2025-03-01,1.31\n"
    )
    (early / "invoices_moved.csv").write_text(
        "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Id,Sales_Order_Item_Id\n"
        "INV-M,1,2025-02-20,500.00,EUR,SO-Z,SO-Z-1\nINV-C,1,2025-02-25,300.00,EUR,SO-Z,SO-Z-1\n"
    )
    _import(con, early)
    con.close()
    shutil.copy(tmp_path / "w.duckdb", tmp_path / "w2.duckdb")
    incremental = warehouse.connect(tmp_path / "w.duckdb")
    assert "journals" in continuous._checksum_rows(incremental)  # its journals test reads the close's checksums
    changed = _export(incremental, tmp_path / "incremental", export_timestamp="2026-01-01T00:00:00Z")
    assert changed.candidates < incremental.execute("SELECT count(*) FROM order_lines").fetchall()[0][0]
    incremental.close()
    every = warehouse.connect(tmp_path / "w2.duckdb")
    every.execute("DELETE FROM continuous_export_watermark")  # no watermark: every line is a candidate
    # and its files written in slices of periods, its tombstones (no period) in the first
    sliced = _export(every, tmp_path / "every", export_timestamp="2026-01-01T00:00:00Z", slice_rows=40)
    every.close()
    assert sliced.slices_by_type.get("unearned_revenue_rollforward", 0) > 2
    assert _files(tmp_path / "incremental") == _files(tmp_path / "every")
    revenue = (tmp_path / "incremental" / "continuousexport-unearned_revenue_rollforward-000002.csv").read_text()
    assert all(f"SO-{x}-1" in revenue for x in "XYZ")
    # the line that is no longer a contract line goes out as a tombstone, found from its superseded invoice
    # (the incremental run does not look through the whole export state for vanished lines)
    assert ",,INV-C-1,INV-C-1," + "," * 14 + "2\n" in revenue


@pytest.mark.parametrize("seed", [5, 43])
def test_a_run_after_a_close_writes_what_a_run_over_every_line_writes(tmp_path, seed):
    """After a close (and a batch), a run compares orders and journals for every line and the other types for
    the batch's candidates only: a close copies their rows of the periods it freezes as they were. A run that
    rechecks every line of every type against the same state writes the same bytes."""
    base, mods = tmp_path / "base", tmp_path / "mods"
    generate(base, lines=150, seed=seed, months=6)
    generate_modifications(base, mods, fraction=0.2, seed=seed + 1)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    _export(con, tmp_path / "first")
    _import(con, mods)
    close.close_period(con, 202502, home_currency=HOME, actor="t")
    close.close_period(con, 202503, home_currency=HOME, actor="t")
    con.close()
    shutil.copy(tmp_path / "w.duckdb", tmp_path / "w2.duckdb")
    after_close = warehouse.connect(tmp_path / "w.duckdb")
    changed = _export(after_close, tmp_path / "after_close", export_timestamp="2026-01-01T00:00:00Z")
    lines = after_close.execute(
        "SELECT count(*) FROM order_lines WHERE Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)"
    ).fetchall()[0][0]
    assert changed.candidates < lines  # the batch's lines, not every line
    assert changed.items_by_type["orders"] >= lines  # every line's orders row carries the new first open period
    assert changed.items_by_type["journals"] > 0  # the newly closed periods' journals go out
    after_close.close()
    every = warehouse.connect(tmp_path / "w2.duckdb")
    every.execute("DELETE FROM continuous_export_watermark")  # no watermark: every line of every type compared
    _export(every, tmp_path / "every", export_timestamp="2026-01-01T00:00:00Z")
    every.close()
    assert _files(tmp_path / "after_close") == _files(tmp_path / "every")


# (order, line) pairs whose order by line differs from their order by (order, line), by code point: lower case
# after upper case, a non-ASCII letter after both, '10' before '9', '-10' before '-9' within one order
TRICKY_LINES = [
    ("ORD-B", "ITEM-A"), ("ORD-A", "ITEM-B"), ("ord-a", "ITEM-0"), ("\u00c9ORD", "ITEM-\u00c9"), ("10", "10-1"),
    ("9", "9-1"), ("ORD-C", "ITEM-C-9"), ("ORD-C", "ITEM-C-10"),
]
# orders whose lines a later batch moves to JPY, which has no rate: held, their rows vanish (a tombstone per type)
HELD_ORDERS = {"ORD-A", "ORD-B", "\u00c9ORD", "9"}


def _tricky_orders(folder: Path, customer: str, product: str, price: str, held: bool = False) -> None:
    """The tricky lines at `price`, each billed 1200.00 upfront (so that they have deferred revenue); `held`:
    the lines of HELD_ORDERS in JPY."""
    folder.mkdir()
    rows = "".join(
        f"{order},{item},{customer},{product},2025-01-10,1,{price},2025-01-10,2025-12-09,"
        f"{'JPY' if held and order in HELD_ORDERS else 'EUR'}\n"
        for order, item in TRICKY_LINES
    )
    (folder / "sales_orders_tricky.csv").write_text(
        "Sales_Order_Id,Sales_Order_Item_Id,Customer_Id,Product_Id,Order_Date,Quantity,Sale_Price,Service_Start_Date,"
        "Service_End_Date,Currency\n" + rows, encoding="utf-8"
    )
    invoices = "".join(
        f"INV-T{n},1,2025-01-10,1200.00,EUR,{order},{item}\n" for n, (order, item) in enumerate(TRICKY_LINES)
    )
    (folder / "invoices_tricky.csv").write_text(
        "Invoice_Number,Invoice_Line,Billing_Date,Billing_Amount,Currency,Sales_Order_Id,Sales_Order_Item_Id\n"
        + invoices, encoding="utf-8"
    )


def test_a_change_sized_run_sorts_rows_by_order_and_line_in_code_point_order(tmp_path):
    """A change-sized run sorts the line-period files on a rank of the rows' (order, line) pairs: the rows come
    out as SPEC §6 sorts them (period, order, line, by code point), checked here in Python, with order ids whose
    order differs from their lines', rows of a closed period (ranked from the frozen rows) and of open ones, and
    tombstones (first, by order and line). A run over every line (sorting on the texts) writes the same bytes."""
    base = tmp_path / "base"
    generate(base, lines=40, seed=31, months=5)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    customer, product = con.execute(
        "SELECT Customer_Id, Product_Id FROM order_lines WHERE Revenue_Rule = 'ratable_daily' LIMIT 1").fetchall()[0]
    _tricky_orders(tmp_path / "tricky", customer, product, "1200.00")
    _import(con, tmp_path / "tricky")
    close.close_period(con, 202501, home_currency=HOME, actor="t")
    _export(con, tmp_path / "first")
    # every tricky line's price changes, and the lines of HELD_ORDERS are held from now on
    _tricky_orders(tmp_path / "changed", customer, product, "1500.00", held=True)
    _import(con, tmp_path / "changed")
    con.close()
    shutil.copy(tmp_path / "w.duckdb", tmp_path / "w2.duckdb")
    changed = warehouse.connect(tmp_path / "w.duckdb")
    result = _export(changed, tmp_path / "changed_run", export_timestamp="2026-01-01T00:00:00Z")
    assert result.candidates == len(TRICKY_LINES)  # a change-sized run: the batch's lines only
    changed.close()
    for export_type in continuous.LINE_PERIOD_TYPES - {"expenses"}:  # the tricky lines have no commissions
        rows = _read(tmp_path / "changed_run" / f"continuousexport-{export_type}-000002.csv")
        keys = [(int(r["Actg_Period"] or 0), r["Sales_Order_Id"], r["Sales_Order_Item_Id"]) for r in rows]
        assert keys == sorted(keys), export_type  # tombstones (no period) first
        held = [(o, i) for o, i in TRICKY_LINES if o in HELD_ORDERS]
        kept = [(o, i) for o, i in TRICKY_LINES if o not in HELD_ORDERS]
        assert [(o, i) for p, o, i in keys if not p] == sorted(held), export_type
        assert {(o, i) for p, o, i in keys if p} == set(kept), export_type
        assert {p for p, _o, _i in keys} >= {202501, 202502}, export_type  # a closed period's rows and open ones
    every = warehouse.connect(tmp_path / "w2.duckdb")
    every.execute("DELETE FROM continuous_export_watermark")  # no watermark: every line compared, no rank
    _export(every, tmp_path / "every", export_timestamp="2026-01-01T00:00:00Z")
    every.close()
    assert _files(tmp_path / "changed_run") == _files(tmp_path / "every")


def test_a_warehouse_whose_state_table_has_the_old_primary_key_is_rebuilt_without_it(tmp_path):
    """continuous_export_state lost its PRIMARY KEY (keeping the index cost more than a change-sized export);
    a warehouse created with it gets the table rebuilt on connect, every row kept, and exports still record."""
    path = tmp_path / "w.duckdb"
    con = warehouse.connect(path)
    con.execute("DROP TABLE continuous_export_state")
    con.execute(
        "CREATE TABLE continuous_export_state (export_type VARCHAR NOT NULL, Sales_Order_Item_Id VARCHAR NOT NULL, "
        "Sales_Order_Id VARCHAR, version INTEGER NOT NULL, content_hash HUGEINT NOT NULL, tombstone BOOLEAN NOT NULL, "
        "PRIMARY KEY (export_type, Sales_Order_Item_Id))"
    )
    con.execute("INSERT INTO continuous_export_state VALUES ('revenue', 'L-1', 'SO-1', 3, 42, false)")
    con.execute("UPDATE revrec_schema SET version = 'before'")
    con.close()
    con = warehouse.connect(path)
    keys = con.execute(
        "SELECT count(*) FROM duckdb_constraints() WHERE table_name = 'continuous_export_state' "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()[0][0]
    assert keys == 0
    assert con.execute("SELECT * FROM continuous_export_state").fetchall() == [("revenue", "L-1", "SO-1", 3, 42, False)]
    con.execute("CREATE TEMP TABLE ce_changes AS SELECT 'revenue' AS export_type, 'L-1' AS Sales_Order_Item_Id, "
                "'SO-1' AS Sales_Order_Id, CAST(7 AS HUGEINT) AS content_hash, false AS tombstone, "
                "(SELECT rowid FROM continuous_export_state) AS state_row")
    sql.run_file(con, "continuous/record_state", version=4)
    assert con.execute("SELECT version, content_hash FROM continuous_export_state").fetchall() == [(4, 7)]
    con.close()


def test_a_renamed_product_resends_the_types_that_show_its_name_and_only_those(tmp_path):
    """An item's checksum covers every value its rows show, before formatting: a product's new name (shown by
    the rollforward, revenue and deferred revenue rows, not by expenses, orders, backlog or journals) sends
    those types of its lines again, and nothing else."""
    base, out = tmp_path / "base", tmp_path / "out"
    generate(base, lines=80, seed=23, months=5)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    _export(con, out)
    product, name = con.execute(
        "SELECT Product_Id, Product_Name FROM order_lines WHERE Revenue_Rule = 'ratable_daily' "
        "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()[0]
    lines = {r[0] for r in con.execute(
        "SELECT Sales_Order_Item_Id FROM order_lines WHERE Product_Id = ?", [product]).fetchall()}
    row = con.execute(
        "SELECT Product_Code, Revenue_Rule, SSP, Class, Location, Department FROM raw_products "
        "WHERE _is_current AND Product_Id = ?", [product]).fetchall()[0]
    drop = tmp_path / "rename"
    drop.mkdir()
    (drop / "products_rename.csv").write_text(
        "Product_Id,Product_Code,Product_Name,Revenue_Rule,SSP,Class,Location,Department\n"
        + ",".join([product, row[0], f'"{name} (renamed)"', row[1], "" if row[2] is None else f"{row[2]:.2f}",
                    *("" if v is None else v for v in row[3:])]) + "\n"
    )
    _import(con, drop)
    result = _export(con, out)
    assert result.version == 2
    shown = {"unearned_revenue_rollforward", "revenue", "deferred_revenue_balance"}
    assert set(result.items_by_type) == shown, result.items_by_type
    for export_type in shown:
        sent = {r["Sales_Order_Item_Id"] for r in _read(out / f"continuousexport-{export_type}-000002.csv")}
        assert sent and sent <= lines
    assert f"{name} (renamed)" in (out / "continuousexport-revenue-000002.csv").read_text()
    assert_replay_equals_current(con, out)
    con.close()


def test_checksums_of_an_earlier_scheme_send_every_item_once_then_nothing(tmp_path):
    """A warehouse whose state holds checksums computed another way (recorded scheme 1, or none) cannot
    compare them: the next run compares every line and sends every item again, rows unchanged, and records
    the current scheme; the run after it finds nothing to send."""
    base, out = tmp_path / "base", tmp_path / "out"
    generate(base, lines=60, seed=31, months=4)
    con = warehouse.connect(tmp_path / "w.duckdb")
    _import(con, base)
    first = _export(con, out)
    con.execute("UPDATE continuous_export_state SET content_hash = content_hash + 1 WHERE NOT tombstone")
    con.execute("UPDATE continuous_export_watermark SET hash_scheme = NULL")
    again = _export(con, out)
    assert again.version == 2 and again.items_by_type == first.items_by_type
    for export_type in first.items_by_type:
        one, two = (out / f"continuousexport-{export_type}-00000{v}.csv" for v in (1, 2))
        assert [r[:-1] for r in csv.reader(one.open())][1:] == [r[:-1] for r in csv.reader(two.open())][1:]
    assert con.execute("SELECT hash_scheme FROM continuous_export_watermark").fetchall() == [(continuous.HASH_SCHEME,)]
    assert _export(con, out).version is None
    assert_replay_equals_current(con, out)
    con.close()


@pytest.mark.parametrize("seed", range(5))
def test_period_slices_cover_every_period_once_in_order_within_the_limit(seed):
    """Slices (exports.period_slice_bounds) are read back by the rule the writer cuts by; every period lands
    in exactly one slice, in order, and a slice holds more than the limit only with a single period of rows."""
    import random

    rnd = random.Random(seed)
    for _ in range(200):
        periods = sorted(rnd.sample(range(202001, 202013), rnd.randint(0, 12)))
        counts = [(p, rnd.randint(0, 9)) for p in periods]
        limit = rnd.randint(1, 20)
        bounds = exports.period_slice_bounds(counts, limit)
        if not counts:
            assert bounds == []
            continue
        assert bounds == sorted(set(bounds)) and set(bounds) <= set(periods[:-1])
        # the writer's rule: slice 0 through bounds[0], slice i after bounds[i-1] through bounds[i], the last after
        slices: list[list[tuple[int, int]]] = [[] for _ in range(len(bounds) + 1)]
        for p, n in counts:
            slices[sum(p > b for b in bounds)].append((p, n))
        assert [c for s in slices for c in s] == counts
        for s in slices:
            # (periods without rows join the next slice rather than make one of no rows)
            assert s and (sum(n for _, n in s) <= limit or sum(n > 0 for _, n in s) == 1)
        # greedy: no slice could have taken the next slice's first period
        for s, nxt in zip(slices, slices[1:], strict=False):
            assert sum(n for _, n in s) + nxt[0][1] > limit


def test_period_slices_of_a_small_file_are_none():
    assert exports.period_slice_bounds([], 5) == []
    assert exports.period_slice_bounds([(202501, 3), (202502, 2)], 5) == []
    assert exports.period_slice_bounds([(202501, 3), (202502, 3)], 5) == [202501]
    assert exports.period_slice_bounds([(202501, 9), (202502, 1), (202503, 1)], 5) == [202501]


def test_a_slice_is_appended_by_reading_where_the_kernel_cannot_copy(tmp_path):
    """copy_file_range cannot write into a pipe: the part's bytes are then appended by reading them."""
    import os

    part = tmp_path / "part"
    part.write_bytes(b"Actg_Period,Revenue\n202501,1.00\n" * 100)
    read_end, write_end = os.pipe()
    try:
        exports._append_file(write_end, part)
        os.close(write_end)
        write_end = None
        with os.fdopen(read_end, "rb") as pipe:
            read_end = None
            assert pipe.read() == part.read_bytes()
    finally:
        for fd in (read_end, write_end):
            if fd is not None:
                os.close(fd)
