"""Close and reopen accounting periods (SPEC §5), with the blocking checks of SPEC §4.

A close freezes everything the period reports; from then on the engine reads those rows instead of
recomputing them, so late data and modifications land in the first open period and a closed period
never changes. A reopen drops the frozen rows of a period and every later one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from revrec_pipelines.lib import engine, exports, sql
from revrec_pipelines.lib.periods import label, next_period, parse_period, previous_period
from revrec_pipelines.lib.warehouse import transaction

MAX_LISTED = 10


class CloseRefused(Exception):
    """The period cannot be closed (or reopened); the message says exactly why and what to do."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or []


@dataclass
class CloseResult:
    period: int
    close_number: int
    periods_frozen: list[int]
    rows_frozen: int
    problems: list[str] = field(default_factory=list)


@dataclass
class ReopenResult:
    period: int
    periods_reopened: list[int]


def last_closed(con: duckdb.DuckDBPyConnection) -> int | None:
    return con.execute("SELECT max(period) FROM closed_periods").fetchall()[0][0]


def first_open(con: duckdb.DuckDBPyConnection) -> int | None:
    """The period the next close must be; None before the very first close (any period may close then).

    After every closed period has been reopened, the first open period is the one reopened last: the
    ledger has had its first close, so periods still close in order from there.
    """
    last = last_closed(con)
    if last is not None:
        return next_period(last)
    reopened = con.execute(
        "SELECT period FROM close_audit WHERE action = 'reopen' ORDER BY event_id DESC LIMIT 1"
    ).fetchall()
    return reopened[0][0] if reopened else None


def run_check(con, name: str, from_period: int = 0, to_period: int = 999912):
    # previous_period: the period before from_period (0 when every period is checked), which
    # checks/rollforward_identity reads each line's prior row from first
    previous = previous_period(from_period) if from_period else 0
    return con.sql(sql.render(
        f"checks/{name}", from_period=from_period, to_period=to_period, previous_period=previous)).pl()


def _listing(rows: list[str], what: str) -> str:
    shown = rows[:MAX_LISTED]
    more = f" … and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return f"{what}: " + "; ".join(shown) + more


def blocking_problems(con: duckdb.DuckDBPyConnection, from_period: int, to_period: int) -> list[str]:
    """Everything that must be fixed before periods from_period..to_period can close."""
    problems = []
    held = con.sql(
        "SELECT From_Currency || '→' || To_Currency AS pair, count(DISTINCT Sales_Order_Item_Id) AS n, "
        "min(Rate_Needed_On) AS since, string_agg(DISTINCT Sales_Order_Item_Id, ', ' ORDER BY Sales_Order_Item_Id) AS items "
        "FROM held_lines GROUP BY ALL ORDER BY pair"
    ).fetchall()
    if held:
        problems.append(
            _listing(
                [f"{pair} needed from {since} for {n} line(s) ({items})" for pair, n, since, items in held],
                "lines are held for missing exchange rates (import the rates, then close again)",
            )
        )
    unmapped = run_check(con, "unmapped_accounts", from_period, to_period)
    if unmapped.height:
        problems.append(
            _listing(
                [f"{r['Account_Type']} for subsidiary {r['Subsidiary_Id']}" for r in unmapped.iter_rows(named=True)],
                "account types without an account mapping (add account_mappings rows)",
            )
        )
    for check, what in (
        ("rollforward_identity", "the rollforward does not add up"),
        ("journals_balanced", "journals do not balance"),
        ("allocation_sums", "allocations do not sum to bookings"),
        ("revenue_equals_allocation", "revenue over all periods differs from the allocation"),
    ):
        bad = run_check(con, check, from_period, to_period)
        if bad.height:
            rows = []
            for r in bad.head(MAX_LISTED).iter_rows(named=True):
                where = " ".join(str(r[k]) for k in ("Actg_Period", "Sales_Order_Item_Id", "Sales_Order_Id", "Subsidiary_Id") if k in r and r[k] is not None)
                rows.append(f"{where}: {r['problem']}")
            problems.append(_listing(rows, f"failed invariant — {what} ({bad.height} rows)"))
    return problems


def _audit(con, action: str, period: int, close_number: int | None, actor: str, run_id: str | None, details: str) -> None:
    con.execute(
        "INSERT INTO close_audit VALUES ((SELECT coalesce(max(event_id), 0) + 1 FROM close_audit), ?, ?, ?, ?, ?, ?, ?)",
        [action, period, close_number, actor, datetime.now(), run_id, details],
    )


def close_period(
    con: duckdb.DuckDBPyConnection,
    period: int | str,
    *,
    home_currency: str,
    actor: str,
    run_id: str | None = None,
    recompute: bool = True,
    progress: Callable[[str], None] = lambda _m: None,
) -> CloseResult:
    period = parse_period(period)
    last = last_closed(con)
    expected = first_open(con)
    refusal = None
    if last is not None and period <= last:
        refusal = (
            f"{period} is already closed (periods are closed through {last}); to change it, reopen it first "
            f"(revrec reopen {period})"
        )
    elif expected is not None and period != expected:
        refusal = f"{period} cannot close: the first open period is {expected} and periods close in order"
    if refusal:
        _audit(con, "close_refused", period, None, actor, run_id, refusal)
        raise CloseRefused(refusal)
    if recompute:
        engine.compute(con, home_currency, progress)
    if expected is None:  # the first close ever: every earlier period closes with it, as history
        # the first period line_periods reports, read from the tables behind it (sql/revrec/line_periods.sql)
        first = min(con.execute(
            "SELECT coalesce(min(Actg_Period), ?) FROM (SELECT Actg_Period FROM frozen_line_periods "
            "UNION ALL SELECT Actg_Period FROM line_period_amounts)", [period]).fetchall()[0][0], period)
    else:
        first = expected
    problems = blocking_problems(con, first, period)
    close_number = con.execute("SELECT coalesce(max(close_number), 0) + 1 FROM close_audit").fetchall()[0][0]
    if problems:
        _audit(con, "close_refused", period, None, actor, run_id, "\n".join(problems))
        raise CloseRefused(f"{period} was not closed:\n- " + "\n- ".join(problems), problems)
    after = 0 if last is None else last  # frozen rows are kept for periods ≤ last; everything after is frozen now
    with transaction(con):
        sql.run_file(con, "close/freeze", period=period, after_period=after, first_period=first)
        record_journal_checksums(con, after, period)
        hashes = con.execute(sql.render("close/period_hashes", first_period=first, last_period=period)).fetchall()
        now = datetime.now()
        con.executemany(
            "INSERT INTO closed_periods VALUES (?, ?, ?, ?, ?, ?)",
            [[p, close_number, p == period, now, actor, h] for p, h in hashes],
        )
        rows = con.execute(
            "SELECT count(*) FROM frozen_line_periods WHERE Actg_Period > ? AND Actg_Period <= ?", [after, period]
        ).fetchall()[0][0]
        frozen = [p for p, _ in hashes]
        detail = f"froze {label(first)}…{label(period)}" if len(frozen) > 1 else f"froze {label(period)}"
        _audit(con, "close", period, close_number, actor, run_id, f"{detail}; {rows} line-period rows")
    progress(f"closed {period} (close #{close_number}): {rows:,} line-period rows frozen")
    return CloseResult(period, close_number, frozen, rows)


def record_journal_checksums(con: duckdb.DuckDBPyConnection, after_period: int, period: int) -> None:
    """Write frozen_journal_checksums for the frozen periods (after_period … period]: the continuous export's
    change test reads them instead of the frozen journal lines (lib/continuous.py)."""
    frozen = f"(SELECT * FROM frozen_journal_lines WHERE Actg_Period > {int(after_period)} AND Actg_Period <= {int(period)})"
    rows = exports.export_query("journals", frozen)
    sql.run_file(con, "close/journal_checksums", rows=rows, after_period=int(after_period), period=int(period))


def reopen_period(
    con: duckdb.DuckDBPyConnection,
    period: int | str,
    *,
    home_currency: str,
    actor: str,
    run_id: str | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> ReopenResult:
    period = parse_period(period)
    last = last_closed(con)
    if last is None or period > last:
        raise CloseRefused(f"{period} is not closed" + (f" (periods are closed through {last})" if last else " (no period is closed)"))
    reopened = [r[0] for r in con.execute(
        "SELECT period FROM closed_periods WHERE period >= ? ORDER BY period", [period]).fetchall()]
    with transaction(con):
        sql.run_file(con, "close/reopen", period=period)
        _audit(con, "reopen", period, None, actor, run_id, f"reopened {', '.join(map(str, reopened))}")
    engine.compute(con, home_currency, progress)
    return ReopenResult(period, reopened)
