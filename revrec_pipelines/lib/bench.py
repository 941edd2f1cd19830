"""`revrec bench`: end-to-end timing and peak memory on generated data, stage by stage, as a user runs them.

Stages: import (the generated files), compute (every revrec table), close of the first period with its
close-period export, and a continuous export after a 1% modification batch (import + compute + export).
A baseline query — one generate_series + window pass over the lines, the bare DuckDB cost of producing the
same line-period rows — gives the waterfall ratio. Peak RSS is the process's (getrusage).
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from revrec_pipelines.lib import close, continuous, engine, exports, generator, importer, sources, warehouse

BASELINE_SQL = """
CREATE OR REPLACE TEMP TABLE bench_baseline AS
SELECT Sales_Order_Item_Id, mi, sum(CAST(Allocated_Revenue AS BIGINT)) OVER (PARTITION BY Sales_Order_Item_Id ORDER BY mi) AS cum
FROM (SELECT Sales_Order_Item_Id, Allocated_Revenue, unnest(generate_series(start_mi, end_mi)) AS mi FROM order_lines)
"""


@dataclass
class Stage:
    name: str
    seconds: float
    rows: int
    peak_rss_mb: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def peak_rss_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _timed(name: str, fn: Callable[[], int]) -> Stage:
    started = time.perf_counter()
    rows = fn()
    return Stage(name, time.perf_counter() - started, rows, peak_rss_mb())


def run_bench(lines: int, seed: int = 1, workdir: Path | None = None, print_fn: Callable[[str], None] = print,
              threads: int | None = None, memory_limit: str | None = None) -> list[Stage]:
    tmp = Path(workdir or tempfile.mkdtemp(prefix="revrec-bench-"))
    try:
        base, mods, out = tmp / "base", tmp / "mods", tmp / "out"
        g = generator.generate(base, lines=lines, seed=seed)
        generator.generate_modifications(base, mods, fraction=0.01, seed=seed + 1)
        print_fn(f"generated {g.total_rows:,} input rows for {lines:,} order lines in {g.seconds:.1f}s ({tmp})")
        con = warehouse.connect(tmp / "w.duckdb", threads=threads, memory_limit=memory_limit)
        stages = []

        def do_import(folder: Path) -> int:
            report = importer.import_from_source(con, sources.LocalFolderSource(folder))
            assert not report.rejected, report.failure_message()
            return sum(o.rows_read for o in report.outcomes)

        def do_compute() -> int:
            engine.compute(con, "USD")
            return con.execute("SELECT count(*) FROM line_periods").fetchall()[0][0]

        def do_close() -> int:
            period = con.execute("SELECT min(Actg_Period) FROM line_periods").fetchall()[0][0]
            close.close_period(con, period, home_currency="USD", actor="bench", recompute=False)
            files = exports.write_close_exports(con, period, sources.LocalFolderDestination(out))
            return sum(f.rows for f in files)

        def do_baseline() -> int:
            con.execute(BASELINE_SQL)
            return con.execute("SELECT count(*) FROM bench_baseline").fetchall()[0][0]

        def do_waterfall() -> int:
            return engine.run_step(con, "line_series", "USD").rows + engine.run_step(con, "line_periods", "USD").rows

        def do_first_continuous() -> int:
            return sum(continuous.run_continuous_export(con, sources.LocalFolderDestination(out)).items_by_type.values())

        def do_continuous() -> int:
            do_import(mods)
            engine.compute(con, "USD")
            return sum(continuous.run_continuous_export(con, sources.LocalFolderDestination(out)).items_by_type.values())

        for name, fn in (("import", lambda: do_import(base)), ("compute", do_compute),
                         ("close + close-period export", do_close), ("baseline generate_series + window", do_baseline),
                         ("waterfall (line_series + line_periods)", do_waterfall),
                         ("first continuous export (every line)", do_first_continuous),
                         ("1% modification: import + compute + continuous export", do_continuous)):
            stage = _timed(name, fn)
            stages.append(stage)
            print_fn(f"{stage.name:<50} {stage.seconds:8.2f}s {stage.rows:>12,} rows {stage.rows_per_second:>12,.0f} rows/s  peak RSS {stage.peak_rss_mb:,} MB")
        con.close()
        by = {s.name: s for s in stages}
        total = sum(by[k].seconds for k in ("import", "compute", "close + close-period export"))
        ratio = by["waterfall (line_series + line_periods)"].seconds / max(by["baseline generate_series + window"].seconds, 1e-9)
        incremental = by["1% modification: import + compute + continuous export"].seconds / max(by["compute"].seconds, 1e-9)
        print_fn(
            f"SUMMARY lines={lines:,} cores={os.cpu_count()} machine={platform.machine()} import+compute+close+export={total:.1f}s "
            f"waterfall/baseline={ratio:.1f}x change/compute={incremental:.2f} peak_rss={peak_rss_mb():,}MB"
        )
        return stages
    finally:
        if workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
