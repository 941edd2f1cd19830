"""The revenue engine (SPEC §4): SQL steps in sql/revrec/, run in order on one DuckDB connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from revrec_pipelines.lib import sql

# (step, table it produces); each step reads the tables of the steps before it.
STEPS: tuple[tuple[str, str], ...] = (
    ("order_lines", "order_lines"),
    ("rate_answers", "rate_answers"),
    ("invoice_events", "invoice_events"),
    ("held_lines", "held_lines"),
    ("line_series", "line_series"),
    ("line_periods", "line_periods"),
    ("journal_lines", "journal_lines"),
    ("invoice_register", "invoice_register"),
    ("orders", "orders"),
    # analysts' views over line_periods, in DECIMAL amounts
    ("unearned_revenue_rollforward", "unearned_revenue_rollforward"),
    ("revenue_waterfall", "revenue_waterfall"),
    ("deferred_revenue_balance", "deferred_revenue_balance"),
    ("revenue_backlog", "revenue_backlog"),
    ("deferred_expenses", "deferred_expenses"),
)


@dataclass
class StepResult:
    step: str
    table: str
    rows: int
    seconds: float


def run_step(con: duckdb.DuckDBPyConnection, step: str, home_currency: str) -> StepResult:
    table = dict(STEPS)[step]
    started = time.perf_counter()
    sql.run_file(con, f"revrec/{step}", home=_currency_literal(home_currency))
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    return StepResult(step, table, rows, time.perf_counter() - started)


def compute(
    con: duckdb.DuckDBPyConnection,
    home_currency: str,
    progress: Callable[[str], None] = lambda _m: None,
    steps: tuple[str, ...] | None = None,
) -> list[StepResult]:
    results = []
    for step, _table in STEPS:
        if steps is not None and step not in steps:
            continue
        r = run_step(con, step, home_currency)
        progress(f"{step}: {r.rows:,} rows in {r.seconds:.2f}s")
        results.append(r)
    return results


def _currency_literal(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"REVREC_HOME_CURRENCY must be a 3-letter ISO currency code, got {code!r}")
    return code
