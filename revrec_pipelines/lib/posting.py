"""Journal posting (SPEC §5): plan one entry per period and subsidiary from the frozen journals, post it
to Rillet or Sage Intacct, and keep its status. A retry never double-posts: entries are planned once
with a deterministic idempotency key, an entry that may have reached the target is looked up before it
is sent again, and a re-close after a reopen posts only the difference as an adjusting entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import duckdb

from revrec_pipelines.lib import sql
from revrec_pipelines.lib.periods import label, last_day
from revrec_pipelines.lib.posting_model import JournalEntry, JournalEntryItem, PostingError

ENTITY_COLUMN = {"rillet": "Rillet_Subsidiary_Id", "intacct": "Intacct_Location_Id"}
ITEM_KEY = ("account_id", "class_id", "location_id", "department_id")


class PostingTarget(Protocol):
    name: str  # rillet | intacct

    def post(self, entry: JournalEntry, idempotency_key: str) -> str:
        """Create the entry at the target and return the target's id (never twice for one key)."""
        ...

    def find(self, entry: JournalEntry) -> str | None:
        """The id of this entry if the target already holds it (after an ambiguous failure)."""
        ...


@dataclass
class PlanReport:
    period: int
    target: str
    planned: list[str] = field(default_factory=list)  # entry keys created
    unchanged: list[str] = field(default_factory=list)  # outstanding entries already right
    superseded: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # subsidiaries with an ambiguous entry to resolve first
    in_balance: list[str] = field(default_factory=list)  # subsidiaries with nothing (more) to post


@dataclass
class PostReport:
    target: str
    succeeded: list[tuple[str, str]] = field(default_factory=list)  # (entry name, target id)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (entry name, error)

    def failure_message(self) -> str:
        lines = [f"{len(self.failed)} journal entr{'y' if len(self.failed) == 1 else 'ies'} failed to post to {self.target}:"]
        lines += [f"- {name}: {error}" for name, error in self.failed]
        lines.append("Fix the cause, then post again (revrec post, or the post_journals job): failed entries are retried "
                     "and nothing is posted twice.")
        return "\n".join(lines)


def _dimension_exprs(dimensions: Iterable[str]) -> dict[str, str]:
    dims = set(dimensions)
    return {
        "class_expr": "Class" if "Class" in dims else "CAST(NULL AS VARCHAR)",
        "location_expr": "Location" if "Location" in dims else "CAST(NULL AS VARCHAR)",
        "department_expr": "Department" if "Department" in dims else "CAST(NULL AS VARCHAR)",
    }


def _rows(con, query: str) -> list[dict]:
    cur = con.execute(query)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _key(row: dict) -> tuple:
    return tuple(row[k] for k in ITEM_KEY)


def entry_name(period: int, subsidiary_id: str | None, sequence: int) -> str:
    base = f"RevRec {label(period)} {subsidiary_id or 'default'}"
    return base if sequence == 0 else f"{base} adjustment {sequence}"


def _content_hash(items: list[dict]) -> str:
    canon = json.dumps(sorted([[*(_key(i)), i["net_debit"]] for i in items], key=str), default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def _entity(con, target: str, subsidiary_id: str | None) -> tuple[str | None, str | None]:
    """(target entity id, problem) for our subsidiary; no subsidiary posts to the default entity."""
    if subsidiary_id is None:
        return None, None
    column = ENTITY_COLUMN[target]
    row = con.execute(
        f"SELECT {column} FROM raw_subsidiaries WHERE _is_current AND Subsidiary_Id = ?", [subsidiary_id]
    ).fetchall()
    if row and row[0][0]:
        return row[0][0], None
    return None, (
        f"subsidiary {subsidiary_id} has no {column} in the subsidiaries file: add it so the entry can be posted "
        f"to the right {target} entity"
    )


def plan_entries(
    con: duckdb.DuckDBPyConnection, period: int, *, target: str, home_currency: str, dimensions: Iterable[str]
) -> PlanReport:
    """Create the Pending entries that bring {target} to what the closed period's journals say."""
    report = PlanReport(period, target)
    desired = _rows(con, sql.render("posting/desired_items", period=period, label=label(period), **_dimension_exprs(dimensions)))
    posted = _rows(con, sql.render("posting/posted_items", period=period, target=target))
    subsidiaries = sorted({r["subsidiary_id"] for r in desired} | {r["subsidiary_id"] for r in posted}, key=lambda s: s or "")
    now = datetime.now()
    for sub in subsidiaries:
        want = {_key(r): r for r in desired if r["subsidiary_id"] == sub}
        have = {_key(r): r["net_debit"] for r in posted if r["subsidiary_id"] == sub}
        delta = []
        for k in sorted(set(want) | set(have), key=lambda k: tuple("" if v is None else v for v in k)):
            net = (want[k]["net_debit"] if k in want else 0) - have.get(k, 0)
            if net:
                desc = want[k]["description"] if k in want else f"reversal {label(period)}"
                delta.append({**dict(zip(ITEM_KEY, k, strict=True)), "net_debit": net, "description": desc})
        outstanding = _rows(
            con,
            "SELECT entry_key, ambiguous, status FROM posting_entries WHERE target = '{t}' AND period = {p} "
            "AND subsidiary_id IS NOT DISTINCT FROM {s} AND status IN ('Pending', 'Failed')".format(
                t=target, p=period, s="NULL" if sub is None else "'" + sub.replace("'", "''") + "'"),
        )
        if any(o["ambiguous"] for o in outstanding):
            report.waiting.append(sub or "default")
            continue
        content = _content_hash(delta) if delta else None
        keep = [o for o in outstanding if content and o["entry_key"].endswith("|" + content)]
        for o in outstanding:
            if o not in keep:
                con.execute("UPDATE posting_entries SET status = 'Superseded', updated_at = ? WHERE entry_key = ?", [now, o["entry_key"]])
                report.superseded.append(o["entry_key"])
        if not delta:
            report.in_balance.append(sub or "default")
            continue
        if keep:
            report.unchanged.append(keep[0]["entry_key"])
            continue
        sequence = con.execute(
            "SELECT count(*) FROM posting_entries WHERE target = ? AND period = ? AND subsidiary_id IS NOT DISTINCT FROM ? "
            "AND status = 'Success'", [target, period, sub]).fetchall()[0][0]
        entry_key = f"{target}|{period}|{sub or ''}|{sequence}|{content}"
        idem = "revrec-" + hashlib.sha256(entry_key.encode()).hexdigest()[:40]
        entity, problem = _entity(con, target, sub)
        debit = sum(i["net_debit"] for i in delta if i["net_debit"] > 0)
        credit = -sum(i["net_debit"] for i in delta if i["net_debit"] < 0)
        con.execute(
            "INSERT INTO posting_entries (entry_key, target, period, subsidiary_id, sequence, name, entry_date, currency, "
            "target_entity_id, idempotency_key, total_debit, total_credit, status, error, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [entry_key, target, period, sub, sequence, entry_name(period, sub, sequence), last_day(period), home_currency,
             entity, idem, debit, credit, "Failed" if problem else "Pending", problem, now, now],
        )
        con.executemany(
            "INSERT INTO posting_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [[entry_key, n, i["account_id"], i["class_id"], i["location_id"], i["department_id"], i["net_debit"], i["description"]]
             for n, i in enumerate(delta, 1)],
        )
        report.planned.append(entry_key)
    return report


def load_entry(con, entry_key: str) -> tuple[JournalEntry, dict]:
    row = _rows(con, f"SELECT * FROM posting_entries WHERE entry_key = '{entry_key.replace(chr(39), chr(39) * 2)}'")[0]
    items = _rows(con, f"SELECT * FROM posting_items WHERE entry_key = '{entry_key.replace(chr(39), chr(39) * 2)}' ORDER BY line_no")
    entry = JournalEntry(
        entry_key=row["entry_key"],
        period=row["period"],
        subsidiary_id=row["subsidiary_id"],
        target_entity_id=row["target_entity_id"],
        name=row["name"],
        entry_date=row["entry_date"],
        currency=row["currency"],
        items=tuple(
            JournalEntryItem(
                account_id=i["account_id"],
                side="DEBIT" if i["net_debit"] > 0 else "CREDIT",
                amount_cents=abs(i["net_debit"]),
                description=i["description"],
                class_id=i["class_id"],
                location_id=i["location_id"],
                department_id=i["department_id"],
            )
            for i in items
        ),
    )
    return entry, row


def post_pending(
    con: duckdb.DuckDBPyConnection,
    poster: PostingTarget,
    *,
    period: int | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> PostReport:
    """Post every Pending and Failed entry of the target (optionally of one period), recording each outcome."""
    report = PostReport(poster.name)
    where = f" AND period = {int(period)}" if period is not None else ""
    keys = [r[0] for r in con.execute(
        f"SELECT entry_key FROM posting_entries WHERE target = ? AND status IN ('Pending', 'Failed'){where} "
        "ORDER BY period, sequence, subsidiary_id NULLS FIRST", [poster.name]).fetchall()]
    for entry_key in keys:
        entry, row = load_entry(con, entry_key)
        if row["status"] == "Failed" and row["error"] and row["error"].startswith("subsidiary ") and row["target_entity_id"] is None and row["subsidiary_id"]:
            entity, problem = _entity(con, poster.name, row["subsidiary_id"])
            if problem:
                report.failed.append((entry.name, problem))
                continue
            con.execute("UPDATE posting_entries SET target_entity_id = ? WHERE entry_key = ?", [entity, entry_key])
            entry, row = load_entry(con, entry_key)
        now = datetime.now()
        try:
            target_id = None
            if row["ambiguous"]:
                target_id = poster.find(entry)
                if target_id:
                    progress(f"{entry.name}: found at {poster.name} as {target_id} (an earlier attempt had created it)")
            if target_id is None:
                target_id = poster.post(entry, row["idempotency_key"])
        except PostingError as exc:
            error = str(exc) + (f" — {exc.detail}" if exc.detail and exc.detail not in str(exc) else "")
            con.execute(
                "UPDATE posting_entries SET status = 'Failed', error = ?, ambiguous = ambiguous OR ?, attempts = attempts + 1, "
                "updated_at = ? WHERE entry_key = ?", [error, exc.ambiguous, now, entry_key])
            report.failed.append((entry.name, error))
            progress(f"{entry.name}: failed — {error}")
            continue
        con.execute(
            "UPDATE posting_entries SET status = 'Success', target_id = ?, error = NULL, ambiguous = false, "
            "attempts = attempts + 1, updated_at = ?, posted_at = ? WHERE entry_key = ?", [target_id, now, now, entry_key])
        report.succeeded.append((entry.name, target_id))
        progress(f"{entry.name}: posted to {poster.name} as {target_id}")
    return report
