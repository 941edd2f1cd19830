"""Continuous export (SPEC §6): versioned change files from which a consumer rebuilds the tables exactly.

Each run that finds a change gets the next Version and writes, per type, every row (all periods) of each
contract line whose rows of that type changed since they were last exported, plus `Version`; a line whose
rows vanished (held, or now all zero) gets one tombstone row. Candidates come from what changed in the
inputs since the last run (lines, invoices, usage, commissions, rates, products, customers, mappings,
closes); a checksum of each candidate's rows confirms a real change. A run is one transaction: it reads
the state, writes the files and then records the state, so a crash before the end rewrites the same Version
on the next run: no version is lost or repeated.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from revrec_pipelines.lib import sql
from revrec_pipelines.lib.engine import ROW_COUNTS, ROWS_BY_PERIOD
from revrec_pipelines.lib.exports import (
    KEY_COLUMNS,
    ORDER_KEY,
    RANK_KEY,
    copy_rows_in_period_slices,
    export_query,
    period_slice_bounds,
    utc_timestamp,
)
from revrec_pipelines.lib.periods import next_period
from revrec_pipelines.lib.sources import ExportDestination
from revrec_pipelines.lib.warehouse import transaction

EXPORT_TYPES = (
    "unearned_revenue_rollforward",
    "revenue",
    "deferred_revenue_balance",
    "orders",
    "journals",
    "invoices",
    "expenses",
    "revenue_backlog",
)
# How an item's checksum is computed (continuous_export_state.content_hash): 2 = the sum of its rows' checksums
# of their values before formatting (the _h column of sql/exports/*), 1 (or unrecorded) = of the formatted rows.
# Checksums of another scheme cannot be compared: the run after a change of scheme compares every line, so every
# item goes out once again (its rows unchanged; a consumer that replaces an item's rows ends as it was).
HASH_SCHEME = 2
LINE_PERIOD_TYPES = {"unearned_revenue_rollforward", "revenue", "deferred_revenue_balance", "expenses", "revenue_backlog"}
# A file expected to hold more rows than this is written in slices of periods, each sorted on its own
# (copy_rows_in_period_slices): at a million lines, sorting a first run's 16M rollforward rows at once spilled
# to disk and took 42 s of its 55. The whole first run took 137 s; in slices of 2M rows 96.5 s at a peak RSS of
# 2.1 GB, in slices of 4M rows 89.9 s at 3.2 GB, past the 2.7 GiB memory limit (BENCHMARKS.md, session 7).
SLICE_ROWS = 2_000_000
# Per type, (all its rows, its rows per period) for every line, counted from the tables behind them (the
# line-period types as lib/engine.py counts line_periods); the orders rows of a run all carry one period and
# are never sliced.
_ROWS_OF_TYPE = {
    **dict.fromkeys(LINE_PERIOD_TYPES, (ROW_COUNTS["line_periods"], ROWS_BY_PERIOD["line_periods"])),
    # journals go out for closed periods only
    "journals": ("SELECT count(*) FROM frozen_journal_lines",
                 "SELECT Actg_Period, count(*) AS n FROM frozen_journal_lines GROUP BY ALL"),
    "invoices": ("SELECT count(*) FROM invoice_register",
                 "SELECT Actg_Period, count(*) AS n FROM invoice_register GROUP BY ALL"),
}


@dataclass
class ContinuousResult:
    version: int | None  # None: nothing changed, nothing written
    files: list[str] = field(default_factory=list)
    items_by_type: dict[str, int] = field(default_factory=dict)  # (type, item) pairs written, tombstones included
    rows_by_type: dict[str, int] = field(default_factory=dict)  # rows written per file, tombstones included
    slices_by_type: dict[str, int] = field(default_factory=dict)  # period slices of the files written in several
    tombstones: int = 0
    candidates: int = 0


def _scalar(con, query: str, params=None):
    return con.execute(query, params or []).fetchall()[0][0]


IN_CANDIDATES = "Sales_Order_Item_Id IN (SELECT Sales_Order_Item_Id FROM ce_candidates)"
NOT_HELD = "Sales_Order_Item_Id NOT IN (SELECT Sales_Order_Item_Id FROM held_lines)"
CANDIDATE = f"{IN_CANDIDATES} AND {NOT_HELD}"
# The types whose rows a close changes for every line, and only those (docs/decisions.md): orders carry the first
# open period, and journals go out for closed periods. A close copies the other types' rows of the periods it
# freezes as they were, so after closes alone (no reopen) they are compared for the batches' candidates only.
CLOSE_TYPES = frozenset({"orders", "journals"})


def _lines(export_type: str, every_line_types: frozenset[str]) -> str:
    """The lines a type's rows are read for: the candidates not held, or every line not held."""
    return NOT_HELD if export_type in every_line_types else CANDIDATE


def _sources(con, every_line_types: frozenset[str] = frozenset()) -> dict[str, str]:
    """Per type, the rows a consumer should hold now (all periods), restricted to candidate lines (to lines not
    held for the types in `every_line_types`)."""
    last_closed = _scalar(con, "SELECT max(period) FROM closed_periods")
    if last_closed is not None:
        open_period = next_period(last_closed)
    else:
        # before the first close the ledger's first period is the first open one (line_periods' first period,
        # read from its two parts: the view would assemble every row first)
        open_period = _scalar(
            con,
            "SELECT coalesce(min(p), CAST(strftime(current_date, '%Y%m') AS INTEGER)) FROM ("
            "SELECT min(Actg_Period) AS p FROM line_period_amounts UNION ALL SELECT min(Actg_Period) FROM frozen_line_periods)",
        )
    line_periods = f"(SELECT * FROM line_periods WHERE {CANDIDATE})"
    # journals go out only once their period has been closed
    journals = (
        f"(SELECT * FROM journal_lines WHERE Actg_Period <= {last_closed} AND {_lines('journals', every_line_types)})"
        if last_closed is not None
        else "(SELECT * FROM journal_lines WHERE false)"
    )
    return {
        **dict.fromkeys(LINE_PERIOD_TYPES, line_periods),
        "journals": journals,
        "invoices": f"(SELECT * FROM invoice_register WHERE {CANDIDATE})",
        "orders": f"(SELECT {open_period} AS Actg_Period, * EXCLUDE (Revenue_Rule) FROM orders WHERE {_lines('orders', every_line_types)})",
    }


def _export_sources(con, every_line_types: frozenset[str] = frozenset()) -> tuple[dict[str, str], dict[str, str]]:
    """`_sources`, built so that each table is read once per run for the candidates, not once per pass; and, for
    a change-sized run, the five line-period types' rows as their files read them, with `_rank` (RANK_KEY).

    The five line-period types read the frozen rows and the open rows of the candidates' line numbers
    (ce_line_nos, from candidates.sql) — every line's, unfiltered, when every line is a candidate. A
    change-sized run first cuts the tables it reads to the candidates' rows, as temporary tables: the frozen
    rows (ce_frozen: they grow by every line's rows at each close, and ten passes read them; only the
    columns the five types' queries name, `_frozen_columns`), both narrow
    line-period tables (ce_amounts and ce_lines, so that each type's query joins only those rows rather than
    every line's, the view's join), the invoice register (ce_invoices) and the orders (ce_orders). The change
    test and the file of a type then read the cut instead of scanning the whole table twice. The types in
    `every_line_types` (after closes) read every line's rows, uncut. The files of the five line-period types
    then sort on the rank of the rows' (order, line) pairs (sql/continuous/rank.sql) rather than on the two
    texts: the same order, for 0.03 s of ranking per run against 0.2–0.4 s of the five COPYs' 1.9–2.3 s after a
    1% batch at a million lines (BENCHMARKS.md, session 9)."""
    sources = _sources(con, every_line_types)
    every_line = _scalar(
        con, "SELECT (SELECT count(*) FROM ce_line_nos) = (SELECT count(*) FROM line_period_lines)"
    )
    open_rows = "SELECT * EXCLUDE (line_no) FROM open_line_periods"
    frozen_rows = f"SELECT * FROM frozen_line_periods WHERE {CANDIDATE}"
    ranked: dict[str, str] = {}
    if not every_line:
        cuts = {
            "ce_frozen": f"SELECT {', '.join(_frozen_columns(con))} FROM frozen_line_periods WHERE {CANDIDATE}",
            "ce_amounts": "SELECT * FROM line_period_amounts WHERE line_no IN (SELECT line_no FROM ce_line_nos)",
            "ce_lines": "SELECT * FROM line_period_lines WHERE line_no IN (SELECT line_no FROM ce_line_nos)",
            "ce_invoices": f"SELECT * FROM {sources['invoices']}",
            "ce_orders": f"SELECT * FROM {sources['orders']}",
        }
        if "orders" in every_line_types:
            del cuts["ce_orders"]
        for table, query in cuts.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")
        open_rows = "SELECT * EXCLUDE (line_no) FROM open_line_period_rows('ce_amounts', 'ce_lines')"
        frozen_rows = "SELECT * FROM ce_frozen"
        sources = {**sources, "invoices": "(SELECT * FROM ce_invoices)"}
        if "ce_orders" in cuts:
            sources["orders"] = "(SELECT * FROM ce_orders)"
        sql.run_file(con, "continuous/rank")
        ranked = dict.fromkeys(LINE_PERIOD_TYPES, "ce_ranked_line_periods")
    line_periods = f"({frozen_rows} UNION ALL BY NAME {open_rows})"
    return {**sources, **dict.fromkeys(LINE_PERIOD_TYPES, line_periods)}, ranked


def _checksum_rows(con, every_line_types: frozenset[str] = frozenset()) -> dict[str, str]:
    """For a change-sized run, the types whose change test can read checksums kept per line and period instead of
    the rows: journals, which go out for closed periods only, from frozen_journal_checksums (written at each
    close, sql/schema/close.sql) — as long as no open row lies in a closed period, which the engine never writes
    (a close moves those rows to the frozen tables; else the test reads the rows, as a run over every line does).
    Rows of (_item, _s1, _h), as the change test sums them."""
    last_closed = _scalar(con, "SELECT max(period) FROM closed_periods")
    if last_closed is None:
        return {}
    first_open_row = _scalar(con, "SELECT min(Actg_Period) FROM line_period_amounts")
    if first_open_row is not None and first_open_row <= last_closed:
        return {}
    return {
        "journals": (
            "SELECT Sales_Order_Item_Id AS _item, Sales_Order_Id AS _s1, content_hash AS _h "
            f"FROM frozen_journal_checksums WHERE Actg_Period <= {last_closed} "
            f"AND {_lines('journals', every_line_types)}"
        )
    }


def _frozen_columns(con) -> list[str]:
    """The columns of frozen_line_periods that the five line-period types' export queries name (their text names
    every column they read; a name in a comment costs a column, never drops one). At a year of closes a cut of
    these 26 of its 44 columns took 0.65–0.95 s, of all of them 0.97–1.46 s (BENCHMARKS.md, session 8)."""
    text = "\n".join(sql.sql_text(f"exports/{export_type}") for export_type in sorted(LINE_PERIOD_TYPES))
    names = [d[0] for d in con.execute("SELECT * FROM frozen_line_periods LIMIT 0").description]
    return [name for name in names if re.search(rf"\b{name}\b", text)]


def _changed_items(source: str, export_type: str) -> str:
    """The source restricted to the lines whose rows of the type go out in this version."""
    return (
        f"(SELECT * FROM {source} WHERE Sales_Order_Item_Id IN "
        f"(SELECT Sales_Order_Item_Id FROM ce_changes WHERE export_type = '{export_type}' AND NOT tombstone))"
    )


def _tombstone_query(columns: list[str], export_type: str, version: int, ranked: bool = False) -> str:
    """A type's tombstone rows: key columns and Version. They have no period, so they sort first, by order and
    line; beside rows sorted on RANK_KEY, by their own rank of the two, so that every sort key stays an integer
    (a text key beside them, even one empty in every row, cost the rank most of its gain)."""
    keys = {"Sales_Order_Id": "t.Sales_Order_Id", "Sales_Order_Item_Id": "t.Sales_Order_Item_Id"}
    select = ", ".join(
        f"fmt_text({keys[c]}) AS {c}" if c in keys else f"NULL AS {c}" for c in columns
    )
    order = (
        "row_number() OVER (ORDER BY t.Sales_Order_Id NULLS LAST, t.Sales_Order_Item_Id) AS _s1, NULL AS _s2, NULL AS _s3"
        if ranked
        else "t.Sales_Order_Id AS _s1, t.Sales_Order_Item_Id AS _s2, NULL AS _s3"
    )
    return (
        f"SELECT {select}, {version} AS Version, t.Sales_Order_Item_Id AS _item, CAST(NULL AS INTEGER) AS _s0, "
        f"{order} FROM ce_changes t WHERE t.export_type = '{export_type}' AND t.tombstone"
    )


def run_continuous_export(
    con: duckdb.DuckDBPyConnection,
    destination: ExportDestination,
    *,
    export_timestamp: str | None = None,
    after_files_written: Callable[[int], None] | None = None,
    progress: Callable[[str], None] = lambda _m: None,
    slice_rows: int = SLICE_ROWS,
) -> ContinuousResult:
    """One continuous export run. `after_files_written(version)` is a test hook between writing and recording;
    `slice_rows`: the rows above which a file is written in period slices (SLICE_ROWS).

    The run is one transaction, from its first read of the export state to the state it records: the change
    test notes the rowids of the state rows a version replaces, and they must still name those rows when it
    is recorded. Anything that fails before the end rolls all of it back, temporary tables included."""
    with transaction(con):
        result = _run(con, destination, export_timestamp, after_files_written, progress, slice_rows)
        _drop_temporary(con)
    return result


def _run(
    con: duckdb.DuckDBPyConnection,
    destination: ExportDestination,
    export_timestamp: str | None,
    after_files_written: Callable[[int], None] | None,
    progress: Callable[[str], None],
    slice_rows: int,
) -> ContinuousResult:
    watermark = con.execute(
        "SELECT last_batch_id, close_events, hash_scheme FROM continuous_export_watermark WHERE id = 1"
    ).fetchall()
    last_batch, last_close_events, hash_scheme = watermark[0] if watermark else (-1, -1, HASH_SCHEME)
    current_batch = _scalar(con, "SELECT coalesce(max(batch_id), 0) FROM import_batches")
    close_events = _scalar(con, "SELECT count(*) FROM close_audit WHERE action IN ('close', 'reopen')")
    mapping_changed = _scalar(
        con,
        "SELECT (SELECT count(*) FROM raw_account_mappings WHERE _batch_id > ?) + "
        "(SELECT count(*) FROM raw_subsidiaries WHERE _batch_id > ?)", [last_batch, last_batch],
    )
    # the close and reopen events since the last run (close_audit keeps every event, numbered in order)
    reopened = _scalar(
        con,
        "SELECT count(*) FILTER (WHERE action = 'reopen') FROM (SELECT action FROM close_audit "
        "WHERE action IN ('close', 'reopen') ORDER BY event_id OFFSET ?)", [max(last_close_events, 0)],
    )
    # a reopen lets the next computation report the reopened periods afresh, for any line
    everything = not watermark or reopened > 0 or mapping_changed > 0 or hash_scheme != HASH_SCHEME
    # closes alone change orders and journals for every line, and nothing else (CLOSE_TYPES)
    every_line_types = CLOSE_TYPES if not everything and close_events != last_close_events else frozenset()
    sql.run_file(
        con, "continuous/candidates", last_batch_id=last_batch, everything="true" if everything else "false",
        home=_home_currency(con),
    )
    candidates = _scalar(con, "SELECT count(*) FROM ce_candidates")
    every = " (all lines: first run, a reopen, a mapping change or a new checksum scheme)" if everything else ""
    if every_line_types:
        every = f" (and every line for {' and '.join(sorted(every_line_types))}: a close)"
    progress(f"{candidates:,} candidate line(s){every}")
    result = ContinuousResult(version=None, candidates=candidates)
    # With nothing exported yet, every line that has rows goes out: no line needs picking from the sources.
    nothing_exported = not _scalar(con, "SELECT count(*) FROM continuous_export_state")
    sources, ranked = _export_sources(con, every_line_types)
    columns: dict[str, list[str]] = {}
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ce_changes (export_type VARCHAR, Sales_Order_Item_Id VARCHAR, Sales_Order_Id VARCHAR, "
        "content_hash HUGEINT, tombstone BOOLEAN, state_row BIGINT)"
    )
    checksums = {} if everything else _checksum_rows(con, every_line_types)
    for export_type in EXPORT_TYPES:
        query = export_query(export_type, sources[export_type])
        columns[export_type] = [
            c for c in (d[0] for d in con.execute(f"SELECT * FROM ({query}) LIMIT 0").description)
            if c not in KEY_COLUMNS.split(", ")
        ]
        compared = "true" if export_type in every_line_types else IN_CANDIDATES
        con.execute(sql.render(
            "continuous/changes", export_type=export_type, rows=checksums.get(export_type, query), compared=compared))
    changes = dict(con.execute("SELECT export_type, count(*) FROM ce_changes GROUP BY ALL").fetchall())
    if not changes:
        _record_watermark(con, current_batch, close_events)
        progress("no change since the last continuous export: no files written")
        return result
    version = _scalar(con, "SELECT coalesce(max(version), 0) + 1 FROM continuous_export_runs")
    stamp = export_timestamp or utc_timestamp(datetime.now(UTC))
    closed = _scalar(con, "SELECT max(period) FROM closed_periods")
    lines = max(1, _scalar(con, "SELECT count(*) FROM line_period_lines"))
    counted: dict[str, list] = {}  # the slice plans' row counts, once per run
    with tempfile.TemporaryDirectory(prefix="revrec-continuous-") as tmp:
        for export_type in EXPORT_TYPES:
            if export_type not in changes:
                continue
            name = f"continuousexport-{export_type}-{version:06d}.csv"
            is_ranked = export_type in ranked
            source = ranked.get(export_type, sources[export_type])
            if not nothing_exported:
                source = _changed_items(source, export_type)
            query = export_query(export_type, source, order_key=RANK_KEY if is_ranked else ORDER_KEY)
            tombstones = _tombstone_query(columns[export_type], export_type, version, is_ranked)
            rows = f"SELECT *, {version} AS Version FROM ({query}) r UNION ALL BY NAME {tombstones}"
            ordered = f"SELECT {', '.join(columns[export_type])}, Version, {KEY_COLUMNS} FROM ({rows})"
            bounds = _slice_bounds(con, export_type, changes[export_type] / lines, slice_rows, counted)
            if bounds:
                progress(f"{export_type}: writing {len(bounds) + 1} slices of periods")
                result.slices_by_type[export_type] = len(bounds) + 1
            result.rows_by_type[export_type] = copy_rows_in_period_slices(con, ordered, Path(tmp) / name, bounds)
            destination.write_file(name, Path(tmp) / name)
            result.files.append(name)
            result.items_by_type[export_type] = changes[export_type]
            progress(f"{name}: {result.rows_by_type[export_type]:,} rows of {changes[export_type]:,} line(s) written")
        name = f"continuousexport-control-{version:06d}.csv"
        (Path(tmp) / name).write_text(
            f"Closed_Period,Export_Timestamp,Version\n{'' if closed is None else closed},{stamp},{version}\n", encoding="utf-8"
        )
        destination.write_file(name, Path(tmp) / name)
        result.files.append(name)
    if after_files_written is not None:
        after_files_written(version)
    sql.run_file(con, "continuous/record_state", version=version)
    con.execute(
        "INSERT INTO continuous_export_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
        [version, datetime.now(), stamp, closed, sum(changes.values()), json.dumps(result.files), destination.uri],
    )
    _record_watermark(con, current_batch, close_events)
    result.version = version
    result.tombstones = _scalar(con, "SELECT count(*) FROM ce_changes WHERE tombstone")
    progress(f"version {version}: {sum(changes.values()):,} (type, line) pair(s) in {len(result.files)} file(s)")
    return result


def _drop_temporary(con) -> None:
    """The run's temporary tables (after a first run, a row per exported item and type) stop holding memory."""
    con.execute("DROP VIEW IF EXISTS temp.main.ce_ranked_line_periods")
    for table in (
        "ce_candidates", "ce_line_nos", "ce_changes", "ce_frozen", "ce_amounts", "ce_lines", "ce_invoices", "ce_orders",
        "ce_rank", "ce_line_ranks",
    ):
        con.execute(f"DROP TABLE IF EXISTS temp.main.{table}")


def _slice_bounds(con, export_type: str, share: float, limit: int, counted: dict[str, list]) -> list[int]:
    """Where to cut the type's file into period slices (exports.period_slice_bounds), from the rows every line
    has per period scaled by the share of lines whose rows go out; none when the file is expected to hold no
    more than `limit` rows. The total is cheap (counts of whole tables); only a run expected to write a large
    file counts the rows per period (0.07–0.09 s at a million lines). `counted` keeps each count for the run:
    the five line-period types share theirs."""
    if export_type not in _ROWS_OF_TYPE:
        return []

    def rows(query: str) -> list:
        if query not in counted:
            counted[query] = con.execute(query).fetchall()
        return counted[query]

    total, by_period = _ROWS_OF_TYPE[export_type]
    share = min(1.0, share)
    if rows(total)[0][0] * share <= limit:
        return []
    counts = sorted(rows(by_period))
    return period_slice_bounds([(p, math.ceil(n * share)) for p, n in counts], limit)


def _home_currency(con) -> str:
    """The home currency the engine last computed in ('' before any computation: then no rate is skipped)."""
    # the lines' attributes of the last computation (one row per line; not the line_periods view, whose join
    # and frozen rows — of earlier computations — a scan would pass through first)
    home = con.execute("SELECT Home_Currency FROM line_period_lines WHERE Home_Currency IS NOT NULL LIMIT 1").fetchall()
    return home[0][0].replace("'", "") if home else ""


def _record_watermark(con, last_batch: int, close_events: int) -> None:
    con.execute(
        "INSERT OR REPLACE INTO continuous_export_watermark (id, last_batch_id, close_events, updated_at, hash_scheme) "
        "VALUES (1, ?, ?, ?, ?)", [last_batch, close_events, datetime.now(), HASH_SCHEME]
    )
