"""`revrec bench`: end-to-end timing and peak memory on generated data, stage by stage, as a user runs them.

The project's generator writes a data set of N order lines and a 1% modification batch into a temporary
folder (removed afterwards). Each stage then calls the library functions the Dagster assets call, on one
DuckDB connection opened like the warehouse's (lib/warehouse.py: thread count, memory limit, spill folder):

- import: `importer.import_from_source` (the raw_inputs asset) on the generated files;
- compute: `engine.run_step` for every revrec asset, in the assets' order (the time of each step is shown);
- close + close-period export: `close.close_period` of one period — the first one with data, the very
  first close — and `exports.write_close_exports` (the closed_periods and close_period_exports assets);
- history (only with `--closed N`, N > 1; not in the total): the next N − 1 periods closed, so that the
  continuous export below runs over a warehouse with that much history, as after months of production;
- continuous export: the first run (every line goes out), then the modification batch (1% of the lines by
  default, `--modified`): its import, the recomputation and `continuous.run_continuous_export` (the
  continuous_export asset). Runs with batches of other sizes show how the export's work follows the change;
  runs with more closed periods, that it does not grow with the history.

- the next close and the continuous export after it (the nightly run after a month-end close: every line's
  orders and the closed period's journals go out), timed apart; not in the total.

- asset metadata: what each revrec asset adds to a Dagster run after its step for the UI (row count, preview,
  totals per period, chart: `asset_metadata` in defs/revrec/assets.py), timed per asset; not in the total.

Not measured: the analysts' copy of the warehouse and Dagster's own run overhead.

Each stage prints its wall seconds, rows per second and the process's peak RSS so far (getrusage). The
waterfall — the line_series and line_periods steps of the compute stage — is compared with the bare DuckDB
cost of producing its rows by one generate_series + window query over the order lines spanning the same
months, written as a table like the engine's, in two widths: BASELINE_SQL writes a ratable revenue and its
running total (4 columns), BASELINE_WIDE_SQL writes rows of the waterfall's own shape (line_period_amounts'
19 columns: flows, balances and adjustments in line and home currency). The summary prints both ratios.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from revrec_pipelines.lib import (
    close,
    continuous,
    engine,
    exports,
    generator,
    importer,
    snapshot,
    sources,
    sql,
    warehouse,
)
from revrec_pipelines.lib.periods import next_period

HOME_CURRENCY = "USD"  # the generator's home currency

# One generate_series + window pass over the lines: every month of each line's span (from its booking or
# service start to the contract's last period: the months line_periods reports), a ratable share of its
# allocation and the running total, written as a table.
BASELINE_SQL = """
CREATE OR REPLACE TABLE bench_baseline AS
SELECT Sales_Order_Item_Id, mi, revenue,
       sum(revenue) OVER (PARTITION BY Sales_Order_Item_Id ORDER BY mi) AS cumulative_revenue
FROM (
    SELECT Sales_Order_Item_Id, mi,
           CASE WHEN mi BETWEEN start_mi AND end_mi THEN Allocated_Revenue // (end_mi - start_mi + 1) ELSE 0 END AS revenue
    FROM (SELECT Sales_Order_Item_Id, Allocated_Revenue, start_mi, end_mi,
                 unnest(generate_series(least(booking_mi, start_mi), greatest(contract_last_mi, end_mi))) AS mi
          FROM order_lines)
)
"""
# The same query writing rows of the waterfall's shape: line_period_amounts' 19 columns (a line, its period,
# 11 flows and 6 balances and adjustments, in line and home currency, BIGINT): flows from the line's own terms
# (a ratable share of its allocation, billed whole in its first month, booked in its booking month; the other
# flows zero, home at a fixed rate) and the balances as running sums over the same window. The engine's
# waterfall produces these rows, under its rules, from the lines and their events: this is the bare DuckDB
# cost of laying out and storing the same rows.
BASELINE_WIDE_SQL = """
CREATE OR REPLACE TABLE bench_baseline_wide AS
SELECT Sales_Order_Item_Id, CAST(mi // 12 * 100 + mi % 12 + 1 AS INTEGER) AS Actg_Period,
       revenue, billing, fx, booking, commissions, amortization,
       revenue * 11 // 10 AS revenue_home, billing * 11 // 10 AS billing_home, fx * 11 // 10 AS fx_home,
       commissions * 11 // 10 AS commissions_home, amortization * 11 // 10 AS amortization_home,
       CAST(sum(billing + fx - revenue) OVER w AS BIGINT) AS position,
       CAST(CASE WHEN mi = contract_last_mi THEN -sum(billing + fx - revenue) OVER w ELSE 0 END AS BIGINT) AS adjustment,
       CAST(sum((billing + fx - revenue) * 11 // 10) OVER w AS BIGINT) AS position_home,
       CAST(CASE WHEN mi = contract_last_mi THEN -sum((billing + fx - revenue) * 11 // 10) OVER w ELSE 0 END AS BIGINT)
           AS adjustment_home,
       CAST(sum(booking - revenue) OVER w AS BIGINT) AS backlog,
       CAST(sum(commissions - amortization) OVER w AS BIGINT) AS deferred_expense
FROM (
    SELECT Sales_Order_Item_Id, mi, contract_last_mi,
           CAST(CASE WHEN mi BETWEEN start_mi AND end_mi THEN Allocated_Revenue // (end_mi - start_mi + 1) ELSE 0 END
                AS BIGINT) AS revenue,
           CAST(CASE WHEN mi = start_mi THEN Allocated_Revenue ELSE 0 END AS BIGINT) AS billing,
           CAST(CASE WHEN mi = booking_mi THEN Allocated_Revenue ELSE 0 END AS BIGINT) AS booking,
           CAST(0 AS BIGINT) AS fx, CAST(0 AS BIGINT) AS commissions, CAST(0 AS BIGINT) AS amortization
    FROM (SELECT Sales_Order_Item_Id, Allocated_Revenue, start_mi, end_mi, booking_mi, contract_last_mi,
                 unnest(generate_series(least(booking_mi, start_mi), greatest(contract_last_mi, end_mi))) AS mi
          FROM order_lines)
)
WINDOW w AS (PARTITION BY Sales_Order_Item_Id ORDER BY mi)
"""
WATERFALL_STEPS = ("line_series", "line_periods")
BASELINE = "baseline generate_series + window"
BASELINE_WIDE = "baseline generate_series + window, 19 columns"
METADATA = "asset metadata (UI, after the compute; not in the total)"
ANALYST_COPY = "analysts' copy (after the compute; not in the total)"
CHECKS = "asset checks (after the compute; not in the total)"
# the SQL checks (sql/checks/, each a Dagster asset check, defs/revrec/checks.py) as a computation run runs them,
# over every period; closed_periods_unchanged has nothing to compare before the first close, after this stage
CHECKED = tuple(sorted(p.stem for p in (sql.SQL_ROOT / "checks").glob("*.sql") if p.stem != "closed_periods_unchanged"))
HISTORY = "history: more periods closed (not in the total)"
AFTER_CLOSE = "the next close + the continuous export after it"


@dataclass
class Stage:
    name: str
    seconds: float
    rows: int
    peak_rss_mb: int
    parts: list[tuple[str, float]] = field(default_factory=list)  # (what, seconds) within the stage

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def machine() -> str:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GB RAM, {platform.machine()}"


class _Clock:
    """Times a stage and the parts it is made of."""

    def __init__(self, name: str):
        self.name = name
        self.parts: list[tuple[str, float]] = []
        self.started = time.perf_counter()

    def part(self, what: str, fn: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = fn()
        self.parts.append((what, time.perf_counter() - started))
        return result

    def stop(self, rows: int) -> Stage:
        return Stage(self.name, time.perf_counter() - self.started, rows, peak_rss_mb(), self.parts)


def run_bench(lines: int, seed: int = 1, workdir: Path | None = None, print_fn: Callable[[str], None] = print,
              threads: int | None = None, memory_limit: str | None = None, continuous: bool = True,
              modified: float = 0.01, closed: int = 1) -> list[Stage]:
    """Run every stage (without the two continuous-export stages when `continuous` is False: the 10M-line
    memory run) and print them and the summary line. `modified`: the fraction of the lines the modification
    batch changes; `closed`: the periods closed before the continuous export (the first one is the close stage,
    in the total; the others the history stage, not in it)."""
    if closed < 1:
        raise ValueError(f"closed is the number of periods closed before the continuous export, at least 1; got {closed}")
    tmp = Path(workdir or tempfile.mkdtemp(prefix="revrec-bench-"))
    try:
        base, mods, out = tmp / "base", tmp / "mods", tmp / "out"
        g = generator.generate(base, lines=lines, seed=seed)
        batch = generator.generate_modifications(base, mods, fraction=modified, seed=seed + 1)
        print_fn(f"generated {g.total_rows:,} input rows for {lines:,} order lines in {g.seconds:.1f}s ({tmp})")
        con = warehouse.connect(tmp / "w.duckdb", threads=threads or os.cpu_count(),
                                memory_limit=memory_limit or warehouse.DEFAULT_MEMORY_LIMIT)
        threads_used, limit_used = con.execute(
            "SELECT current_setting('threads'), current_setting('memory_limit')"
        ).fetchall()[0]
        print_fn(f"machine: {machine()}; DuckDB {duckdb.__version__}, threads={threads_used}, memory_limit={limit_used}")
        stages = []
        counted: dict[str, int] = {}  # the rows each compute step counted, handed to the metadata as a run does
        runs = [
            lambda: _import_stage(con, base),
            lambda: _compute_stage(con, counted),
            lambda: _metadata_stage(con, counted),
            lambda: _checks_stage(con),
            lambda: _analyst_copy_stage(con, tmp),
            lambda: _close_stage(con, out),
            lambda: _baseline_stage(con, BASELINE, BASELINE_SQL, "bench_baseline"),
            lambda: _baseline_stage(con, BASELINE_WIDE, BASELINE_WIDE_SQL, "bench_baseline_wide"),
        ]
        if closed > 1:
            runs.append(lambda: _history_stage(con, closed - 1, batch.first_date))
        if continuous:
            runs += [lambda: _first_continuous_stage(con, out), lambda: _change_stage(con, mods, out, modified),
                     lambda: _after_close_stage(con, out)]
        for run in runs:
            stages.append(run())
            _print_stage(stages[-1], print_fn)
        con.close()
        print_fn(_summary(lines, stages, threads_used, limit_used, modified, closed))
        return stages
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _import(con: duckdb.DuckDBPyConnection, folder: Path) -> int:
    report = importer.import_from_source(con, sources.LocalFolderSource(folder), progress=lambda _m: None)
    assert not report.rejected, report.failure_message()
    return sum(o.rows_read for o in report.outcomes)


def _compute(con: duckdb.DuckDBPyConnection, clock: _Clock) -> dict[str, int]:
    """Run every step; returns the rows each step counted in its table, as the assets hand them to their metadata."""
    results = [clock.part(step, lambda step=step: engine.run_step(con, step, HOME_CURRENCY)) for step, _t in engine.STEPS]
    return {r.table: r.rows for r in results}


def _checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Each stage ends by writing its changes to the database file, as a run does when it closes its
    connection, so that no stage pays for an earlier one's (DuckDB may otherwise checkpoint at any later commit)."""
    con.execute("CHECKPOINT")


def _import_stage(con: duckdb.DuckDBPyConnection, base: Path) -> Stage:
    clock = _Clock("import")
    rows = _import(con, base)
    clock.part("checkpoint", lambda: _checkpoint(con))
    return clock.stop(rows)


def _compute_stage(con: duckdb.DuckDBPyConnection, counted: dict[str, int]) -> Stage:
    clock = _Clock("compute")
    counted.update(_compute(con, clock))
    clock.part("checkpoint", lambda: _checkpoint(con))
    return clock.stop(counted["line_periods"])


def _metadata_stage(con: duckdb.DuckDBPyConnection, counted: dict[str, int]) -> Stage:
    # the Dagster layer's own function, so that the figure is what a run shows (imported here: the rest of the
    # bench needs only the library)
    from revrec_pipelines.defs.revrec.assets import TABLES, asset_metadata

    clock = _Clock(METADATA)
    for spec in TABLES:
        clock.part(spec.name, lambda spec=spec: asset_metadata(con, spec, rows=counted[spec.name]))
    return clock.stop(len(TABLES))


def _checks_stage(con: duckdb.DuckDBPyConnection) -> Stage:
    clock = _Clock(CHECKS)
    for name in CHECKED:
        clock.part(name, lambda name=name: close.run_check(con, name))
    return clock.stop(len(CHECKED))


def _analyst_copy_stage(con: duckdb.DuckDBPyConnection, tmp: Path) -> Stage:
    # what the analyst_warehouse asset does after every computation
    rows = sum(snapshot.table_rows(con, con.execute("SELECT current_database()").fetchall()[0][0]).values())
    clock = _Clock(ANALYST_COPY)
    snapshot.write_snapshot(con, snapshot.snapshot_path(tmp / "w.duckdb"))
    return clock.stop(rows)  # rows: every table's, copied


def _close_stage(con: duckdb.DuckDBPyConnection, out: Path) -> Stage:
    clock = _Clock("close + close-period export")
    period = con.execute("SELECT min(Actg_Period) FROM line_periods").fetchall()[0][0]
    clock.part(f"close {period}", lambda: _close(con, period))
    files = clock.part(f"close-period export {period}", lambda: exports.write_close_exports(
        con, period, sources.LocalFolderDestination(out)))
    clock.part("checkpoint", lambda: _checkpoint(con))
    return clock.stop(sum(f.rows for f in files))


def _history_stage(con: duckdb.DuckDBPyConnection, periods: int, batch_starts: date) -> Stage:
    """Close the `periods` periods after the last closed one, each as the close stage closes its own (without
    the exports); all of them before the modification batch's month, whose data must land in open periods."""
    clock = _Clock(HISTORY)
    period = close.last_closed(con)
    batch_period = batch_starts.year * 100 + batch_starts.month
    for _ in range(periods):
        period = next_period(period)
        if period >= batch_period:
            raise ValueError(
                f"cannot close {period}: the modification batch's data begins in {batch_period}, which must stay "
                "open; ask for fewer closed periods or more months of data"
            )
        clock.part(f"close {period}", lambda period=period: _close(con, period))
    clock.part("checkpoint", lambda: _checkpoint(con))
    rows = con.execute("SELECT count(*) FROM frozen_line_periods").fetchall()[0][0]
    return clock.stop(rows)


def _baseline_stage(con: duckdb.DuckDBPyConnection, name: str, query: str, table: str) -> Stage:
    clock = _Clock(name)
    con.execute(query)
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    stage = clock.stop(rows)
    con.execute(f"DROP TABLE {table}")
    _checkpoint(con)  # outside the stage's time: the engine's steps are timed without theirs too
    return stage


def _first_continuous_stage(con: duckdb.DuckDBPyConnection, out: Path) -> Stage:
    clock = _Clock("first continuous export (every line)")
    result = _continuous_export(con, out)
    return clock.stop(sum(result.items_by_type.values()))


def _continuous_export(con: duckdb.DuckDBPyConnection, out: Path) -> continuous.ContinuousResult:
    """A continuous export run (the continuous_export asset's function), its writes checkpointed."""
    result = continuous.run_continuous_export(con, sources.LocalFolderDestination(out))
    _checkpoint(con)
    return result


def _close(con: duckdb.DuckDBPyConnection, period: int) -> None:
    """A close as the closed_periods asset runs it, without its recomputation (the bench has just computed)."""
    close.close_period(con, period, home_currency=HOME_CURRENCY, actor="bench", recompute=False)


def _batch(modified: float) -> str:
    return f"{modified * 100:g}%"  # 0.01 → "1%"


def _change_stage_name(modified: float) -> str:
    return f"{_batch(modified)} modification: import + compute + continuous export"


def _change_stage(con: duckdb.DuckDBPyConnection, mods: Path, out: Path, modified: float) -> Stage:
    clock = _Clock(_change_stage_name(modified))
    clock.part("import of the batch", lambda: (_import(con, mods), _checkpoint(con)))
    clock.part("compute", lambda: (_compute(con, _Clock("compute")), _checkpoint(con)))
    result = clock.part("continuous export", lambda: _continuous_export(con, out))
    return clock.stop(sum(result.items_by_type.values()))


def _after_close_stage(con: duckdb.DuckDBPyConnection, out: Path) -> Stage:
    """The next period closed (after the batch), then the continuous export, as the nightly run after a month-end
    close: every line's orders carry the new first open period, and the closed period's journals go out."""
    clock = _Clock(AFTER_CLOSE)
    period = next_period(close.last_closed(con))
    clock.part(f"close {period}", lambda: (_close(con, period), _checkpoint(con)))
    result = clock.part("continuous export", lambda: _continuous_export(con, out))
    return clock.stop(sum(result.rows_by_type.values()))


def _print_stage(stage: Stage, print_fn: Callable[[str], None]) -> None:
    print_fn(f"{stage.name:<55} {stage.seconds:8.2f}s {stage.rows:>12,} rows {stage.rows_per_second:>12,.0f} rows/s"
             f"  peak RSS {stage.peak_rss_mb:,} MB")
    for what, seconds in stage.parts:
        print_fn(f"    {what:<51} {seconds:8.2f}s")


def _summary(lines: int, stages: list[Stage], threads: object, memory_limit: object, modified: float, closed: int) -> str:
    by = {s.name: s for s in stages}
    total = sum(by[k].seconds for k in ("import", "compute", "close + close-period export"))
    waterfall = sum(seconds for what, seconds in by["compute"].parts if what in WATERFALL_STEPS)
    baseline = by[BASELINE].seconds
    baseline_wide = by[BASELINE_WIDE].seconds
    compute = max(by["compute"].seconds, 1e-9)
    change = by.get(_change_stage_name(modified))
    if change is None:
        continuous = "continuous=skipped "
    else:
        export = dict(change.parts)["continuous export"]
        # the target: the continuous export after the batch against a full compute; and the whole cycle
        continuous = (f"modified={_batch(modified)} closed={closed} continuous_export/compute={export / compute:.2f} "
                      f"batch_import+compute+export/compute={change.seconds / compute:.2f} "
                      f"after_close_export={dict(by[AFTER_CLOSE].parts)['continuous export']:.1f}s ")
    return (
        f"SUMMARY lines={lines:,} cores={os.cpu_count()} threads={threads} memory_limit={memory_limit} "
        f"import+compute+close+export={total:.1f}s asset_metadata={by[METADATA].seconds:.1f}s "
        f"asset_checks={by[CHECKS].seconds:.1f}s analyst_copy={by[ANALYST_COPY].seconds:.1f}s "
        f"waterfall={waterfall:.1f}s baseline={baseline:.1f}s "
        f"waterfall/baseline={waterfall / max(baseline, 1e-9):.1f}x baseline_19_columns={baseline_wide:.1f}s "
        f"waterfall/baseline_19_columns={waterfall / max(baseline_wide, 1e-9):.1f}x "
        f"{continuous}peak_rss={peak_rss_mb():,}MB"
    )
