"""`revrec bench` runs every stage on generated data and reports it (a smoke test: speed is measured by
the benchmark itself and recorded in BENCHMARKS.md, never asserted by a timed test)."""

import pytest

from revrec_pipelines.defs.revrec.assets import TABLES
from revrec_pipelines.lib import engine, generator, importer, sources, warehouse
from revrec_pipelines.lib.bench import (
    AFTER_CLOSE,
    ANALYST_COPY,
    BASELINE,
    BASELINE_SQL,
    BASELINE_WIDE,
    BASELINE_WIDE_SQL,
    CHECKED,
    CHECKS,
    HISTORY,
    HOME_CURRENCY,
    METADATA,
    run_bench,
)


def test_bench_runs_every_stage_on_a_small_data_set(tmp_path):
    lines: list[str] = []
    stages = run_bench(200, seed=3, workdir=tmp_path, print_fn=lines.append)
    names = [s.name for s in stages]
    assert names[:6] == ["import", "compute", METADATA, CHECKS, ANALYST_COPY, "close + close-period export"]
    # the asset checks a computation run runs, each timed
    assert [what for what, _s in stages[3].parts] == list(CHECKED) and " asset_checks=" in lines[-1]
    # the analysts' copy the analyst_warehouse asset writes after a computation, timed outside the total
    assert (tmp_path / "w-analyst.duckdb").exists() and " analyst_copy=" in lines[-1]
    # the UI metadata of every revrec asset, each timed
    assert [what for what, _s in stages[2].parts] == [t.name for t in TABLES]
    assert "1% modification: import + compute + continuous export" in names
    assert all(s.rows > 0 and s.seconds >= 0 and s.peak_rss_mb > 0 for s in stages)
    assert lines[-1].startswith("SUMMARY lines=200 ")
    assert any((tmp_path / "out").glob("closedperiodexport-*.csv"))
    assert "continuous_export/compute=" in lines[-1] and "waterfall/baseline=" in lines[-1]
    assert "waterfall/baseline_19_columns=" in lines[-1] and "asset_metadata=" in lines[-1]
    # the run after the next close: the period after the close stage's, then every line's orders go out
    after = stages[names.index(AFTER_CLOSE)]
    first = int(stages[names.index('close + close-period export')].parts[0][0].split()[-1])
    assert [what for what, _s in after.parts] == [f"close {first + 1}", "continuous export"]
    assert " after_close_export=" in lines[-1]
    assert (tmp_path / "out" / "continuousexport-orders-000003.csv").exists()


def test_bench_can_leave_out_the_continuous_export_stages(tmp_path):
    lines: list[str] = []
    stages = run_bench(200, seed=3, workdir=tmp_path, print_fn=lines.append, continuous=False)
    assert [s.name for s in stages] == [
        "import", "compute", METADATA, CHECKS, ANALYST_COPY, "close + close-period export", BASELINE, BASELINE_WIDE]
    assert "continuous=skipped" in lines[-1]
    assert not any((tmp_path / "out").glob("continuousexport-*.csv"))

def test_the_wide_baseline_writes_rows_of_the_waterfalls_shape(tmp_path):
    """The 19-column baseline stores what line_period_amounts stores, column for column and type for type, one
    row per month of each line's span, as many rows as the narrow baseline."""
    generator.generate(tmp_path / "in", lines=300, seed=5)
    con = warehouse.connect(tmp_path / "w.duckdb", threads=2)
    importer.import_from_source(con, sources.LocalFolderSource(tmp_path / "in"), progress=lambda _m: None)
    engine.compute(con, HOME_CURRENCY)
    con.execute(BASELINE_SQL)
    con.execute(BASELINE_WIDE_SQL)

    def columns(table: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]

    assert columns("bench_baseline_wide")[1:] == columns("line_period_amounts")[1:]
    assert len(columns("bench_baseline_wide")) == 19
    narrow, wide = (con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("bench_baseline", "bench_baseline_wide"))
    assert narrow == wide > 300
    # the running sums are the balances of the stand-in flows: a line's last position is its billing less revenue
    last = con.execute(
        "SELECT count(*) FROM (SELECT Sales_Order_Item_Id, arg_max(position, Actg_Period) AS p, "
        "sum(billing + fx - revenue) AS s FROM bench_baseline_wide GROUP BY ALL) WHERE p <> s"
    ).fetchall()[0][0]
    assert last == 0


def test_bench_takes_the_size_of_the_modification_batch(tmp_path):
    lines: list[str] = []
    stages = run_bench(200, seed=3, workdir=tmp_path, print_fn=lines.append, modified=0.25)
    assert "25% modification: import + compute + continuous export" in [s.name for s in stages]
    assert " modified=25% closed=1 continuous_export/compute=" in lines[-1]
    # the batch the generator wrote changes about a quarter of the 200 lines (1% would be 2)
    changed = (tmp_path / "mods" / "sales_orders_mod.csv").read_text().count("\n") - 1
    assert changed >= 40


def test_bench_closes_more_periods_before_the_continuous_export_when_asked(tmp_path):
    """--closed N: the periods after the close stage's are closed in the history stage (outside the total), one
    after another, so that the batch's continuous export runs over N closed periods."""
    lines: list[str] = []
    stages = run_bench(200, seed=3, workdir=tmp_path, print_fn=lines.append, closed=3)
    names = [s.name for s in stages]
    assert names.index(HISTORY) < names.index("first continuous export (every line)")
    history = stages[names.index(HISTORY)]
    first = int(stages[names.index("close + close-period export")].parts[0][0].split()[-1])
    closes = [what for what, _s in history.parts if what.startswith("close ")]
    assert closes == [f"close {first + 1}", f"close {first + 2}"]  # the generator's data starts in January
    assert history.rows > 0  # frozen rows of all three periods
    assert " closed=3 " in lines[-1]
    control = (tmp_path / "out" / "continuousexport-control-000002.csv").read_text()
    assert control.splitlines()[1].startswith(f"{first + 2},")


def test_bench_refuses_to_close_the_modification_batchs_month(tmp_path):
    with pytest.raises(ValueError, match="must stay open"):
        run_bench(200, seed=3, workdir=tmp_path, print_fn=lambda _l: None, closed=400)


def test_the_row_changes_script_counts_what_the_continuous_export_writes(tmp_path):
    # benchmarks/row_changes.py diffs every row before and after a batch; the continuous export finds the
    # changed lines from the inputs and its state. The rows of the lines the one finds changed must be the rows
    # the other writes (tombstones aside), type by type.
    import csv
    import runpy
    from pathlib import Path

    from revrec_pipelines.lib import continuous

    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "row_changes.py"))
    counts = script["measure"](300, modified=0.2, seed=4)

    base, mods, out = tmp_path / "base", tmp_path / "mods", tmp_path / "out"
    generator.generate(base, lines=300, seed=4)
    generator.generate_modifications(base, mods, fraction=0.2, seed=5)
    con = warehouse.connect(tmp_path / "w.duckdb")
    for folder in (base, mods):
        assert not importer.import_from_source(con, sources.LocalFolderSource(folder)).rejected
        engine.compute(con, HOME_CURRENCY)
        version = continuous.run_continuous_export(con, sources.LocalFolderDestination(out)).version
    con.close()
    for export_type, (rows, sent, changed, vanished) in counts.items():
        path = out / f"continuousexport-{export_type}-{version:06d}.csv"
        with path.open(newline="", encoding="utf-8") as f:
            written = sum(1 for row in csv.DictReader(f) if row["Actg_Period"])  # tombstones have no period
        assert written == sent, export_type
        assert 0 < changed <= sent < rows, export_type
        assert vanished >= 0
