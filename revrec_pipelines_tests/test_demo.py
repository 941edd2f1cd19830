"""`revrec demo` from nothing in an empty folder: it builds the warehouse from the bundled sample data,
closes two periods, writes their exports and prints a summary."""

import os
import subprocess
import sys
from pathlib import Path

import duckdb


def test_demo_from_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVREC_", "DAGSTER_HOME"))}
    revrec = Path(sys.executable).with_name("revrec")
    proc = subprocess.run([str(revrec), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "closed 202501" in proc.stdout and "closed 202502" in proc.stdout
    assert "Warehouse:" in proc.stdout
    exports = tmp_path / "data" / "exports"
    for period in (202501, 202502):
        for kind in ("unearned_revenue_rollforward", "revenue", "deferred_revenue_balance", "orders", "journals",
                     "invoices", "control", "expenses", "revenue_backlog"):
            assert (exports / f"closedperiodexport-{kind}-{period}.csv").exists(), kind
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM order_lines").fetchall()[0][0] >= 300
        assert con.execute("SELECT list(period ORDER BY period) FROM closed_periods").fetchall()[0][0] == [202501, 202502]
        # the demo's runs are in the Dagster instance it created, so they show in the UI
        assert (tmp_path / "data" / "dagster_home" / "dagster.yaml").exists()
    finally:
        con.close()
    # running it again starts fresh and succeeds again
    again = subprocess.run([str(revrec), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
