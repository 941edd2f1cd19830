"""The revenue engine (SPEC §4): SQL steps in sql/revrec/, run in order on one DuckDB connection."""

from __future__ import annotations

import re
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


# Tables served as views over narrower helper tables (see their SQL); a warehouse computed by an earlier
# version holds a base table of that name, which the view replaces.
VIEWS = ("line_series", "line_periods", "journal_lines")
# The account types of journal_line_nets' columns (<type>_net) and journal_line_accounts' (<type>_account).
JOURNAL_NETS = ("contra_revenue", "revenue", "deferred_revenue", "unbilled_receivable", "deferred_expense",
                "expense_clearing", "expense_recognized")
# Row counts read from the stored rows, where the view's count would assemble every row to count it:
# line_periods is the frozen rows plus one row per stored open row (the join with its line is one to one),
# and so are the analysts' views that show every line_periods row; revenue_backlog shows those with a
# backlog (non-usage lines: the others store none).
_LINE_PERIODS_COUNT = (
    "SELECT (SELECT count(*) FROM frozen_line_periods) + (SELECT count(*) FROM line_period_amounts)"
)
ROW_COUNTS = {
    "line_series": "SELECT count(*) FROM line_series_amounts",  # the view joins each row to its one line
    "line_periods": _LINE_PERIODS_COUNT,
    "unearned_revenue_rollforward": _LINE_PERIODS_COUNT,
    "revenue_waterfall": _LINE_PERIODS_COUNT,
    "deferred_revenue_balance": _LINE_PERIODS_COUNT,
    "deferred_expenses": _LINE_PERIODS_COUNT,
    "revenue_backlog": (
        "SELECT (SELECT count(*) FROM frozen_line_periods WHERE Ending_Backlog IS NOT NULL) "
        "+ (SELECT count(*) FROM line_period_amounts WHERE backlog IS NOT NULL)"
    ),
    # journal_lines: the frozen lines plus, per open row, its non-zero nets of the seven account types, read
    # from the nets alone (sql/revrec/journal_lines.sql; each open row joins exactly one line and its accounts)
    "journal_lines": (
        "SELECT (SELECT count(*) FROM frozen_journal_lines) + (SELECT coalesce(sum("
        + " + ".join(f"CAST({n}_net <> 0 AS INTEGER)" for n in JOURNAL_NETS)
        + "), 0) FROM journal_line_nets)"
    ),
}


# Rows per period of the tables whose rows are keyed first by period and assembled by a view, counted from the
# rows they are assembled from: an asset's preview (the first rows by period) reads only the periods that hold
# them (defs/metadata.py), and the continuous export cuts a large file into slices of periods (lib/continuous.py).
# Neither needs the counts exact: they only choose where a query stops.
_LINE_PERIOD_ROWS_BY_PERIOD = (
    "SELECT Actg_Period, count(*) AS n FROM (SELECT Actg_Period FROM frozen_line_periods "
    "UNION ALL SELECT Actg_Period FROM line_period_amounts) GROUP BY ALL"
)
ROWS_BY_PERIOD = dict.fromkeys(
    ("line_periods", "unearned_revenue_rollforward", "revenue_waterfall", "deferred_revenue_balance",
     "revenue_backlog", "deferred_expenses", "journal_lines"),
    _LINE_PERIOD_ROWS_BY_PERIOD,
)


def run_step(con: duckdb.DuckDBPyConnection, step: str, home_currency: str) -> StepResult:
    table = dict(STEPS)[step]
    started = time.perf_counter()
    if table in VIEWS:
        _drop_base_table(con, table)
    sql.run_file(con, f"revrec/{step}", home=_currency_literal(home_currency))
    _drop_step_temp_tables(con, step)
    rows = con.execute(ROW_COUNTS.get(table, f"SELECT count(*) FROM {table}")).fetchall()[0][0]
    return StepResult(step, table, rows, time.perf_counter() - started)


def _drop_step_temp_tables(con: duckdb.DuckDBPyConnection, step: str) -> None:
    """A step's temporary tables are its own intermediate results (no later step reads them): dropped when it
    ends, they stop holding memory (a million lines' line_series and line_periods leave 1.9 GB of them) that
    later steps and stages in the same connection would otherwise have to spill to make room."""
    for name in re.findall(r"CREATE OR REPLACE TEMP TABLE (\w+)", sql.sql_text(f"revrec/{step}")):
        con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")


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


def _drop_base_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    kind = con.execute(
        "SELECT table_type FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'main' AND table_name = ?",
        [name],
    ).fetchall()
    if kind == [("BASE TABLE",)]:
        con.execute(f"DROP TABLE {name}")


def _currency_literal(code: str) -> str:
    code = code.strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise ValueError(f"REVREC_HOME_CURRENCY must be a 3-letter ISO currency code, got {code!r}")
    return code
