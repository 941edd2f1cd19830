"""`revrec demo`: from nothing, a fresh warehouse built from the bundled sample data — import, compute,
two closes with their exports — then a short summary."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from revrec_pipelines.lib.settings import Settings

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"


def _local(uri: str) -> Path | None:
    return Path(uri[len("file://"):]) if uri.startswith("file://") else None


def prepare(settings: Settings) -> Path:
    warehouse = Path(settings.warehouse)
    for p in (warehouse, warehouse.with_name(warehouse.name + ".wal")):
        p.unlink(missing_ok=True)
    inbox = _local(settings.source)
    if inbox is None:
        raise ValueError("revrec demo runs on a local inbox: unset REVREC_SOURCE or set it to file://PATH")
    if inbox.exists():
        shutil.rmtree(inbox)
    shutil.copytree(SAMPLE_DATA, inbox)
    exports = _local(settings.export_dest)
    if exports is not None and exports.exists():
        for f in exports.glob("closedperiodexport-*.csv"):
            f.unlink()
    return inbox


def run_demo(run_job: Callable, close_outputs: Callable[[int], None], settings: Settings | None = None) -> None:
    from revrec_pipelines.lib import warehouse as wh
    from revrec_pipelines.lib.periods import next_period

    s = settings or Settings.from_env()
    inbox = prepare(s)
    print(f"sample data copied to {inbox}")
    run_job("import_files", {"ops": {"raw_inputs": {"config": {}}}})
    with wh.connection(s.warehouse) as con:
        first = con.execute("SELECT min(Actg_Period) FROM line_periods").fetchall()[0][0]
    if first is None:
        raise RuntimeError("the sample data produced no revenue rows")
    for period in (first, next_period(first)):
        run_job(
            "close_period",
            {"ops": {"closed_periods": {"config": {"period": str(period), "closed_by": "revrec demo"}}}},
            tags={"revrec/close_outputs": "inline"},
        )
        close_outputs(period)
        print(f"closed {period}")
    with wh.connection(s.warehouse, read_only=True) as con:
        print_summary(con, s)


def print_summary(con, s: Settings) -> None:
    counts = {
        t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
        for t in ("order_lines", "line_periods", "journal_lines", "invoice_register", "held_lines")
    }
    print("\nWarehouse:", s.warehouse)
    for t, n in counts.items():
        print(f"  {t:<18} {n:>10,} rows")
    rows = con.execute(
        "SELECT Actg_Period, fmt_money(sum(Revenue_Home)), fmt_money(sum(Ending_Unearned_Home)), "
        "Actg_Period <= coalesce((SELECT max(period) FROM closed_periods), 0) "
        "FROM line_periods GROUP BY ALL ORDER BY 1 LIMIT 12"
    ).fetchall()
    print(f"\n  {'period':<8} {'revenue (' + s.home_currency + ')':>18} {'deferred':>16}")
    for period, revenue, deferred, closed in rows:
        print(f"  {period:<8} {revenue:>18} {deferred:>16}{'  closed' if closed else ''}")
    print(f"\nExports: {s.export_dest}")
    print("Open the UI: make ui   (or: DAGSTER_HOME=$PWD/data/dagster_home dagster dev)")
